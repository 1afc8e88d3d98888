"""The server's VAPID key pair: made once into the data dir, read at every start.

Browsers bind a push subscription to the public key they were given (the
`applicationServerKey`); a new key would silently orphan every subscription, so the key
is generated only when none exists and never rotated by the server. The private key's
file is created with mode 0600 (it signs who we are to every push service).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

FILENAME = "vapid_private_key.pem"


@dataclass(frozen=True)
class VapidKeys:
    private_pem: bytes
    public_key: str  # the uncompressed P-256 point, base64url without padding

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def load_or_create(data_dir: Path) -> VapidKeys:
    """The key pair in `data_dir`, generated there first if there is none."""
    path = data_dir / FILENAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:  # O_EXCL: two nodes starting at once on a shared dir keep the first one's key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
    pem = path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 private key")
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(pem, base64.urlsafe_b64encode(point).decode().rstrip("="))
