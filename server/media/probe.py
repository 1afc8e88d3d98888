"""The pre-join media check: can this browser's network reach the SFU at all?

Before joining, the join page offers a throwaway connection with one data channel
(`media_probe`). The SFU answers it with a PeerConnection of its own, with the same
ICE servers and ports as a real media connection, and echoes what the channel
receives; the page knows the media path works once the channel opens and a message
comes back, and which path it took (direct or through TURN) from its own stats. The
probe carries no audio or video and joins no room. It is closed after `PROBE_SECONDS`,
when the same connection probes again, or when its socket goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from server.config import Settings
from server.errors import Conflict, PairwiseError
from server.media.ice import sfu_configuration
from server.media.peer import InvalidSdp, sanitize_remote_sdp
from server.tasks import BackgroundTasks

log = logging.getLogger("pairwise.media.probe")

PROBE_SECONDS = 20.0
MAX_PROBES = 64  # at once, on this node
# At once per join token (room and identity): a page runs one check, a second tab or a
# retry a second. Without it one token opening sockets in a loop took all 64 slots.
MAX_PROBES_PER_OWNER = 2


class ProbesBusy(PairwiseError):
    code = "busy"
    status = 503


class TooManyProbes(PairwiseError):
    code = "rate_limited"
    status = 429


@dataclass
class _Probe:
    pc: RTCPeerConnection
    owner: str  # a join token: room and identity
    timer: asyncio.TimerHandle | None = None  # set once answered


class MediaProbes:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Held from the moment an offer is taken, answered or not: concurrent offers count
        # towards the caps, and a newer offer on the same connection closes one still being
        # answered (two racing offers once left the first PeerConnection open for good).
        self._probes: dict[str, _Probe] = {}
        self._expiring = BackgroundTasks()

    def __len__(self) -> int:
        return len(self._probes)

    async def answer(self, key: str, offer_sdp: str, owner: str | None = None) -> str:
        """Answer a probe offer (data channel only) for the client known as `key`; at most
        `MAX_PROBES_PER_OWNER` at once share one `owner` (a join token). A newer offer from
        the same `key` replaces this one: then this one is refused with `conflict`."""
        clean = sanitize_remote_sdp(offer_sdp)
        sections = [line.split()[0] for line in clean.split("\r\n") if line.startswith("m=")]
        if sections != ["m=application"]:
            raise InvalidSdp("a probe offer has exactly one section: a data channel")
        owner = owner if owner is not None else key
        replaced = self._probes.pop(key, None)  # this connection's earlier check, if any
        try:
            if sum(1 for p in self._probes.values() if p.owner == owner) >= MAX_PROBES_PER_OWNER:
                raise TooManyProbes(
                    f"at most {MAX_PROBES_PER_OWNER} connection checks at once per person; "
                    "close one (media_probe_close) or wait for it to end"
                )
            if len(self._probes) >= MAX_PROBES:
                raise ProbesBusy("too many connection checks at once; try again in a moment")
            pc = RTCPeerConnection(sfu_configuration(self._settings))
            pc.on("datachannel", _echo)
            # Taken before any await, so an offer arriving meanwhile finds and closes it.
            probe = self._probes[key] = _Probe(pc, owner)
        finally:
            if replaced is not None:
                await _end(replaced)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(clean, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            if self._probes.get(key) is not probe:
                raise _replaced() from None
            await self.close(key)
            raise InvalidSdp(f"the probe offer was refused: {exc}") from None
        if self._probes.get(key) is not probe:  # closed (a newer offer, or the socket went)
            await _close_quietly(pc)
            raise _replaced()
        probe.timer = asyncio.get_running_loop().call_later(
            PROBE_SECONDS, lambda: self._expiring.spawn(self._expire(key, probe))
        )
        return str(pc.localDescription.sdp)

    async def close(self, key: str) -> None:
        probe = self._probes.pop(key, None)
        if probe is not None:
            await _end(probe)

    async def close_all(self) -> None:
        for key in list(self._probes):
            await self.close(key)
        await self._expiring.cancel_all()

    async def _expire(self, key: str, probe: _Probe) -> None:
        if self._probes.get(key) is probe:
            await self.close(key)


async def _end(probe: _Probe) -> None:
    if probe.timer is not None:
        probe.timer.cancel()
    await _close_quietly(probe.pc)


def _replaced() -> Conflict:
    return Conflict("this connection check was replaced by a newer one, or closed")


def _echo(channel: Any) -> None:
    channel.on("message", channel.send)


async def _close_quietly(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):
        await pc.close()
