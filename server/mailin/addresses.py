"""Reply addresses: `reply+<pair>.<member>.<signature>@<domain>`, one per member and pair.

The address is the reply's only credential, the way a sign-in link is: the signature (an
HMAC over the pair and the member, keyed by the server's secret) says Pairwise handed it to
that member for that pair, so nobody can make one up for a pair or a person, and no table
has to remember which addresses were handed out. Mail systems may change the case of a
local part, so every piece is lower-case only: the pair id is hex, the member's identity
is base32 (lower-cased; identities may hold `@`, `.` or capitals), the signature is hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from server.errors import Forbidden, NotFound

PREFIX = "reply+"
# 80 bits: each guess costs an SMTP transaction, so this outlasts any online search.
SIGNATURE_CHARS = 20
_LOCAL = re.compile(r"reply\+([0-9a-f]{32})\.([a-z2-7]{1,1400})\.([0-9a-f]+)")


class ReplyAddresses:
    def __init__(self, secret_key: str, domain: str | None) -> None:
        self._key = hashlib.sha256(b"pairwise mail reply address\0" + secret_key.encode()).digest()
        self.domain = domain.lower() if domain else None

    def _signature(self, pair_id: str, identity: str) -> str:
        signed = f"{pair_id}\0{identity}".encode()  # a pair id is hex: the NUL ends it
        return hmac.new(self._key, signed, hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]

    def address(self, pair_id: str, identity: str) -> str:
        """The address at which `identity` answers in the chat of pair `pair_id`."""
        if self.domain is None:
            raise ValueError("reply addresses need PAIRWISE_INBOUND_DOMAIN")
        member = base64.b32encode(identity.encode()).decode().rstrip("=").lower()
        signature = self._signature(pair_id, identity)
        return f"{PREFIX}{pair_id}.{member}.{signature}@{self.domain}"

    def parse(self, address: str) -> tuple[str, str]:
        """The pair id and identity an address was signed for.

        NotFound (`unsigned`) for anything not shaped like a reply address of this domain,
        Forbidden (`forged`) for one whose signature does not match what it names.
        """
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or (self.domain is not None and domain.lower() != self.domain):
            raise NotFound("this is not a Pairwise reply address", code="unsigned")
        found = _LOCAL.fullmatch(local.lower())
        if found is None:
            raise NotFound("this is not a Pairwise reply address", code="unsigned")
        pair_id, member, signature = found.groups()
        try:
            identity = base64.b32decode(member.upper() + "=" * (-len(member) % 8)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Forbidden("this reply address was not made by Pairwise", code="forged") from None
        if not hmac.compare_digest(signature, self._signature(pair_id, identity)):
            raise Forbidden("this reply address was not made by Pairwise", code="forged")
        return pair_id, identity


def for_log(address: str) -> str:
    """`address` with its signature cut off: a valid reply address posts as its member, so
    a log that held one would hand that to whoever reads the log (as a sign-in link would)."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    head, dot, _ = local.rpartition(".")
    if not (at and dot and local.lower().startswith(PREFIX)):
        return address[:300]
    return f"{head}.…@{domain}"[:300]
