"""SRTP with keys exchanged in the SDP (SDES, RFC 4568): what a trunk offers when it
encrypts media over `RTP/SAVP`.

One suite, AES_CM_128_HMAC_SHA1_80 (RFC 4568's mandatory one), through pylibsrtp, which
aiortc already depends on. Each direction has its own key: the caller's (from the
offer's `a=crypto` line) authenticates and decrypts what arrives, ours (random, in the
answer) protects what we send. A packet that fails authentication is dropped: it can
neither latch the call's media nor reach the room.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

import pylibsrtp

SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_AND_SALT = 30  # 16-byte key + 14-byte salt


class SrtpError(ValueError):
    """An SRTP packet that does not authenticate, or a key that is not one."""


@dataclass(frozen=True)
class SdesKeys:
    """The chosen `a=crypto` line: its tag, the caller's key and ours (key and salt)."""

    tag: int
    remote: bytes
    local: bytes

    @property
    def answer_line(self) -> str:
        return crypto_line(self.tag, self.local)


def crypto_line(tag: int, key: bytes) -> str:
    """The `a=crypto` line that gives the other side `key` (ours) under `tag`."""
    return f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(key).decode()}"


def parse_crypto(value: str) -> SdesKeys | None:
    """An `a=crypto` value we can use (`1 AES_CM_128_HMAC_SHA1_80 inline:KEY[|…]`), with
    a fresh key of ours; None for another suite, an MKI, session parameters or a bad key."""
    parts = value.split()
    if len(parts) != 3 or parts[1] != SUITE or not parts[2].startswith("inline:"):
        return None  # session parameters (UNENCRYPTED_SRTP …) are refused with the line
    inline = parts[2][len("inline:") :].split("|")
    if len(inline) > 2 and inline[2]:
        return None  # a master key identifier: not supported
    try:
        tag = int(parts[0])
        key = base64.b64decode(inline[0], validate=True)
    except (ValueError, binascii.Error):
        return None
    if len(key) != KEY_AND_SALT:
        return None
    return SdesKeys(tag, key, secrets.token_bytes(KEY_AND_SALT))


def keep_local(offered: SdesKeys, current: SdesKeys) -> SdesKeys:
    """A re-INVITE's keys: the caller's (new or the same), ours kept, under the tag the
    caller chose now."""
    return SdesKeys(offered.tag, offered.remote, current.local)


PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80


def _session(key: bytes, ssrc_type: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=ssrc_type, srtp_profile=PROFILE))


class SrtpContext:
    """Protects what we send and checks what arrives (SRTP, and SRTCP when the caller
    multiplexes RTCP on the RTP port), for one call."""

    def __init__(self, keys: SdesKeys) -> None:
        self.keys = keys
        self._tx = _session(keys.local, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(keys.remote, pylibsrtp.Policy.SSRC_ANY_INBOUND)

    def rekey(self, keys: SdesKeys) -> None:
        """A re-INVITE brought the caller's new key (RFC 4568 §7.1.4): what arrives is
        checked with it from now on; packets under the old key fail and are dropped.
        Our own key changes only when `keys.local` does."""
        if keys.remote != self.keys.remote:
            self._rx = _session(keys.remote, pylibsrtp.Policy.SSRC_ANY_INBOUND)
        if keys.local != self.keys.local:
            self._tx = _session(keys.local, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self.keys = keys

    def protect(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect(packet))

    # pylibsrtp raises ValueError, not its Error, for a packet over its 1500-byte buffer:
    # it escaped `datagram_received` (the loop logged a traceback per such datagram).
    def unprotect(self, packet: bytes) -> bytes:
        try:
            return bytes(self._rx.unprotect(packet))
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(str(exc)) from None

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        try:
            return bytes(self._rx.unprotect_rtcp(packet))
        except (pylibsrtp.Error, ValueError) as exc:
            raise SrtpError(str(exc)) from None
