"""The fallback for a publisher and subscriber with no codec in common: decode once per pair.

The decoded frames go to the subscriber's aiortc sender, which encodes them to the
subscriber's codec. This costs about 40 times more than forwarding, so the SFU
offers every subscriber the publisher's codec first and counts each transcoded pair.
"""

from __future__ import annotations

import asyncio
import logging

import av
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame

log = logging.getLogger("pairwise.media.transcode")


class Transcoder:
    """Decodes one publisher's encoded frames for one subscriber."""

    def __init__(self, source: RTCRtpCodecParameters, target: RTCRtpCodecParameters) -> None:
        self.source = source
        self.target = target
        self.errors = 0
        self._decoder = get_decoder(source)

    async def decode(self, packet: av.Packet) -> list[Frame]:
        frame = JitterFrame(bytes(packet), int(packet.pts or 0))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self._decoder.decode, frame)
        except av.FFmpegError as exc:
            self.errors += 1
            log.debug("transcode decode failed: %s", exc)
            return []
