"""Signing deliveries, the way Stripe does: `Pairwise-Signature: t=<unix time>,v1=<hex>`,
where v1 is HMAC-SHA256 with the webhook's secret over `<t>.<the body's bytes>`.

The time is inside what is signed, so a receiver that refuses signatures older than a few
minutes cannot be fed a recorded delivery again later. Each attempt is signed anew.

A webhook's secret is never stored: it is HMAC-SHA256 of a random salt (stored) under
the server's secret key, so a copy of the database alone signs nothing. Rotating
`PAIRWISE_SECRET_KEY` changes every webhook's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

HEADER = "Pairwise-Signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


def webhook_secret(server_key: str, salt: str) -> str:
    mac = hmac.new(server_key.encode(), b"pairwise-webhook-secret:" + salt.encode(), "sha256")
    return SECRET_PREFIX + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance: float = TOLERANCE_SECONDS
) -> bool:
    """What a receiver does (written here for the tests and as the reference for
    docs/webhooks.md): a v1 signature of this body, at a time within `tolerance`."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in parts if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, value) for name, value in parts if name == "v1")
