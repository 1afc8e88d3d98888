"""SIP digest authentication, as a UAC answering a trunk's 401/407 (RFC 3261 §22.4
with RFC 2617 and RFC 7616: MD5 or SHA-256, qop "auth" or none).

No installed package does this for SIP: urllib's and requests' digest handlers are
tied to HTTP requests (requests puts a URL's path, not a SIP URI, in `uri`), so the
calculation is these few lines over hashlib.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class DigestError(ValueError):
    """A challenge we cannot answer (another scheme, an algorithm or qop we lack)."""


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: str | None = None  # "auth" when the server offers it
    opaque: str | None = None


def parse_challenge(header: str) -> Challenge:
    """A `WWW-Authenticate` or `Proxy-Authenticate` value."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a digest challenge: {scheme[:20]!r}")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}  # fmt: skip
    algorithm = (params.get("algorithm") or "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise DigestError(f"digest algorithm {algorithm} is not supported")
    qops = [q.strip() for q in (params.get("qop") or "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise DigestError("only qop=auth is supported")
    if "realm" not in params or "nonce" not in params:
        raise DigestError("a digest challenge needs a realm and a nonce")
    return Challenge(
        params["realm"], params["nonce"], algorithm, "auth" if qops else None, params.get("opaque")
    )


def authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The `Authorization` (or `Proxy-Authorization`) value answering `challenge`."""
    digest = ALGORITHMS[challenge.algorithm]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    ha1 = h(f"{username}:{challenge.realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    fields = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
    ]
    if challenge.qop:
        cnonce = cnonce or secrets.token_hex(8)
        count = f"{nc:08x}"
        response = h(f"{ha1}:{challenge.nonce}:{count}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
    else:
        response = h(f"{ha1}:{challenge.nonce}:{ha2}")
    fields += [f'response="{response}"', f"algorithm={challenge.algorithm}"]
    if challenge.opaque is not None:
        fields.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(fields)


def answer_challenge(
    status: int,
    header: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
) -> tuple[Challenge, tuple[str, str]]:
    """The challenge in a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) and
    the header answering it (`Authorization` or `Proxy-Authorization`, value): the one
    place dial-out and registration turn a challenge into credentials."""
    challenge = parse_challenge(header)
    name = "Authorization" if status == 401 else "Proxy-Authorization"
    return challenge, (name, authorization(challenge, method, uri, username, password, nc))


def challenge_header(status: int) -> str:
    """Where a 401 or 407 carries its challenge."""
    return "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
