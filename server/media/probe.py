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
# At once per join token (room and identity): a page runs one check, a second tab or a
# retry a second. Without it one token opening sockets in a loop took all 64 slots.
MAX_PROBES_PER_OWNER = 2


class ProbesBusy(PairwiseError):
    code = "busy"
    status = 503


class TooManyProbes(PairwiseError):
    code = "rate_limited"
    status = 429


class MediaProbes:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._probes: dict[str, tuple[RTCPeerConnection, asyncio.TimerHandle]] = {}
        self._owners: dict[str, str] = {}  # key → owner

    def __len__(self) -> int:
        return len(self._probes)

    async def answer(self, key: str, offer_sdp: str, owner: str | None = None) -> str:
        """Answer a probe offer (data channel only) for the client known as `key`; at most
        `MAX_PROBES_PER_OWNER` at once share one `owner` (a join token)."""
        clean = sanitize_remote_sdp(offer_sdp)
        sections = [line.split()[0] for line in clean.split("\r\n") if line.startswith("m=")]
        if sections != ["m=application"]:
            raise InvalidSdp("a probe offer has exactly one section: a data channel")
        await self.close(key)
        owner = owner if owner is not None else key
        if sum(1 for o in self._owners.values() if o == owner) >= MAX_PROBES_PER_OWNER:
            raise TooManyProbes(
                f"at most {MAX_PROBES_PER_OWNER} connection checks at once per person; "
                "close one (media_probe_close) or wait for it to end"
            )
        if len(self._owners) >= MAX_PROBES:
            raise ProbesBusy("too many connection checks at once; try again in a moment")
        self._owners[key] = owner  # held while answering: concurrent offers count too
        pc = RTCPeerConnection(sfu_configuration(self._settings))
        pc.on("datachannel", _echo)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(clean, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            self._owners.pop(key, None)
            await _close_quietly(pc)
            raise InvalidSdp(f"the probe offer was refused: {exc}") from None
        timer = asyncio.get_running_loop().call_later(
            PROBE_SECONDS, lambda: asyncio.ensure_future(self._expire(key, pc))
        )
        self._probes[key] = (pc, timer)
        return str(pc.localDescription.sdp)

    async def close(self, key: str) -> None:
        self._owners.pop(key, None)
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
