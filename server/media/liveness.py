"""When a media connection last heard from the far end, for a participant who sends nothing.

The health monitor judges a publisher's connection by its RTP; a participant who is muted
with the camera off sends none, and aiortc itself only notices a dead path at ICE consent
expiry (~31 s). Two signals say the far end is still there:

- any datagram on the DTLS transport (SRTP, SRTCP: a browser sends receiver reports about
  every 1 s for the video it receives, 5 s for audio);
- an answered ICE consent check (RFC 7675). A connection that received nothing for
  `PROBE_SECONDS` is asked directly, at most one check in flight, instead of waiting for
  aioice's own check every 4–6 s. An idle, healthy connection (nothing forwarded to it)
  therefore always answers within a round trip, and is never taken for dead.

Times are `time.monotonic()`, the clock the monitor's `now` comes from.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiortc import RTCPeerConnection

from server.media import aiortc_internals as internals

log = logging.getLogger("pairwise.media.liveness")

PROBE_SECONDS = 1.0


class Liveness:
    def __init__(self, pc: RTCPeerConnection, now: float) -> None:
        self._pc = pc
        self.heard_at = now  # the last time the far end was heard from
        self._packets = 0
        self._probe: asyncio.Task[None] | None = None

    def observe(self, now: float) -> float:
        """Note what arrived since the last call (and ask, if nothing did for a while);
        returns the seconds since the far end was last heard from."""
        packets = internals.packets_received(self._pc)
        if packets != self._packets:
            self._packets = packets
            self.heard_at = max(self.heard_at, now)
        quiet = now - self.heard_at
        if quiet >= PROBE_SECONDS and (self._probe is None or self._probe.done()):
            self._probe = asyncio.ensure_future(self._check())
        return quiet

    def restart(self, now: float) -> None:
        """The connection has just connected: it counts as heard from now."""
        self.heard_at = now

    async def _check(self) -> None:
        try:
            answered = await internals.check_consent(self._pc)
        except Exception:  # a connection closing under the check: no answer
            log.debug("consent check failed", exc_info=True)
            return
        if answered:
            self.heard_at = max(self.heard_at, time.monotonic())

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
