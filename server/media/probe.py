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
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from server.config import Settings
from server.errors import PairwiseError
from server.media.ice import sfu_configuration
from server.media.peer import InvalidSdp, sanitize_remote_sdp

log = logging.getLogger("pairwise.media.probe")

PROBE_SECONDS = 20.0
MAX_PROBES = 64  # at once, on this node


class ProbesBusy(PairwiseError):
    code = "busy"
    status = 503


class MediaProbes:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._probes: dict[str, tuple[RTCPeerConnection, asyncio.TimerHandle]] = {}

    def __len__(self) -> int:
        return len(self._probes)

    async def answer(self, key: str, offer_sdp: str) -> str:
        """Answer a probe offer (data channel only) for the client known as `key`."""
        clean = sanitize_remote_sdp(offer_sdp)
        sections = [line.split()[0] for line in clean.split("\r\n") if line.startswith("m=")]
        if sections != ["m=application"]:
            raise InvalidSdp("a probe offer has exactly one section: a data channel")
        await self.close(key)
        if len(self._probes) >= MAX_PROBES:
            raise ProbesBusy("too many connection checks at once; try again in a moment")
        pc = RTCPeerConnection(sfu_configuration(self._settings))
        pc.on("datachannel", _echo)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(clean, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await _close_quietly(pc)
            raise InvalidSdp(f"the probe offer was refused: {exc}") from None
        timer = asyncio.get_running_loop().call_later(
            PROBE_SECONDS, lambda: asyncio.ensure_future(self._expire(key, pc))
        )
        self._probes[key] = (pc, timer)
        return str(pc.localDescription.sdp)

    async def close(self, key: str) -> None:
        probe = self._probes.pop(key, None)
        if probe is not None:
            pc, timer = probe
            timer.cancel()
            await _close_quietly(pc)

    async def close_all(self) -> None:
        for key in list(self._probes):
            await self.close(key)

    async def _expire(self, key: str, pc: RTCPeerConnection) -> None:
        if key in self._probes and self._probes[key][0] is pc:
            await self.close(key)


def _echo(channel: Any) -> None:
    channel.on("message", channel.send)


async def _close_quietly(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(Exception):
        await pc.close()
