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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.phone.sip import SipMessage

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
Credentials = tuple[str, str]  # (Authorization | Proxy-Authorization, its value)
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class DigestError(ValueError):
    """A challenge we cannot answer (another scheme, an algorithm or qop we lack)."""

    status = 0  # the 401 or 407 that carried it, when known


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


def answering(
    status: int, challenge: Challenge, method: str, uri: str, username: str, password: str, nc: int
) -> Credentials:
    """The header answering `challenge` from a 401 (`Authorization`) or a 407
    (`Proxy-Authorization`), and its value."""
    name = "Authorization" if status == 401 else "Proxy-Authorization"
    return name, authorization(challenge, method, uri, username, password, nc)


async def retry_with_digest(
    send: Callable[[Credentials | None], Awaitable[SipMessage]],
    method: str,
    uri: str,
    username: str | None,
    password: str | None,
    credentials: Credentials | None = None,
) -> tuple[SipMessage, tuple[int, Challenge] | None]:
    """Send a request (`send(credentials)` returns its final answer) and, when that is a
    401 or 407 and we have a username and password, send it once more answering the
    challenge (RFC 3261 §22.2): the one place dial-out and registration do this. Returns
    the last final answer and the (401 | 407, challenge) answered for it, None when none
    was; a second 401/407 is returned, not answered (the credentials were refused).
    `DigestError` (with the `status` that carried it) when the challenge cannot be
    answered."""
    response = await send(credentials)
    status = response.status
    if status not in (401, 407) or not username or password is None:
        return response, None
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    try:
        challenge = parse_challenge(response.get(header))
    except DigestError as exc:
        exc.status = status
        raise
    answer = answering(status, challenge, method, uri, username, password, 1)
    return await send(answer), (status, challenge)
