"""VP9 and AV1 between Chromium pages, forwarded without decoding; an aiortc
participant who cannot decode them in the same room gets the audio and a reason
instead of those videos (server/media/forward_only.py).

One page prefers VP9, the other AV1 (an init script puts it first in every video
transceiver's `setCodecPreferences`), as a browser configured for them would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import OpenPage, RoomPage
from tests.media.support import MediaClient, encode_audio, encode_video
from tests.support.participants import SocketParticipant, issue_token
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PREFER = """
(preferred) => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init) {
    const transceiver = add.call(this, trackOrKind, init);
    const kind = typeof trackOrKind === "string" ? trackOrKind : trackOrKind.kind;
    if (kind === "video") {
      const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
      const rank = (c) => (c.mimeType === preferred ? 0 : 1);
      transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
    }
    return transceiver;
  };
}
"""

VIDEO_STATS = """
async () => {
  const pc = window.pairwiseDebug.room.media.pc;
  if (!pc) return [];
  const stats = await pc.getStats();
  const out = [];
  stats.forEach((s) => {
    if ((s.type === "inbound-rtp" || s.type === "outbound-rtp") && s.kind === "video") {
      const codec = s.codecId ? stats.get(s.codecId) : null;
      out.push({
        type: s.type,
        codec: codec ? codec.mimeType : null,
        frames: s.framesDecoded || s.framesEncoded || 0,
      });
    }
  });
  return out;
}
"""


async def open_preferring(
    open_page: OpenPage, identity: str, codec: str, **options: Any
) -> RoomPage:
    person = await open_page(identity, diag=("debug-handle",), join=False, **options)
    await person.page.add_init_script(f"({PREFER})({json.dumps(codec)})")
    await person.page.reload()
    return await person.join()


def frames_of(stats: list[dict[str, Any]], kind: str, codec: str) -> int:
    return max((s["frames"] for s in stats if s["type"] == kind and s["codec"] == codec), default=0)


async def decodes(page: RoomPage, codec: str, more_than: int = 0) -> int:
    """Wait until `page` has decoded more than `more_than` frames of `codec`."""

    async def check() -> int:
        return max(0, frames_of(await page.evaluate(VIDEO_STATS), "inbound-rtp", codec) - more_than)

    return more_than + await eventually(check, timeout=30, interval=0.5, what=f"{codec} decoded")


async def test_vp9_and_av1_are_forwarded_between_chromium_pages_and_a_vp8_only_client_keeps_the_audio(
    open_page: OpenPage, base_url: str
) -> None:
    ada = await open_preferring(open_page, "ada", "video/VP9", role="mentor")
    bo = await open_preferring(open_page, "bo", "video/AV1")
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=15_000)

    # Ada's camera goes out as VP9, bo's as AV1, and each decodes the other's (the SFU
    # has neither decoder).
    decoded = await decodes(bo, "video/VP9", more_than=10)
    await decodes(bo, "video/VP9", more_than=decoded + 30)
    await decodes(ada, "video/AV1", more_than=10)
    for person, codec in ((ada, "video/VP9"), (bo, "video/AV1")):
        sent = await person.evaluate(VIDEO_STATS)
        assert frames_of(sent, "outbound-rtp", codec) > 0, sent

    # Carol (aiortc: VP8 and H264 only) joins: no track for the VP9 and AV1 videos, a
    # reason for each, both audios as usual; her own VP8 video reaches the pages.
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "carol", None, "mentee")
    socket = await SocketParticipant(base_url, token).connect()
    await socket.join(media_mode="video")
    carol = MediaClient(socket, decode=False)
    carol.publish(await asyncio.to_thread(encode_video, 15), encode_audio(50))
    try:
        await carol.connect()
        for owner, codec in (("ada", "VP9"), ("bo", "AV1")):
            unavailable = await socket.wait_for("media_unavailable", {"identity": owner})
            assert unavailable == {
                "identity": owner,
                "kind": "video",
                "source": "camera",
                "reason": "codec_unsupported",
                "codec": codec,
            }
        await eventually(
            lambda: (
                len(carol.of_kind("audio")) == 2
                and all(r.frames > 50 for r in carol.of_kind("audio"))
            ),
            timeout=20,
            what="carol hears ada and bo",
        )
        assert not carol.of_kind("video")
        await decodes(ada, "video/VP8", more_than=10)  # carol's camera
        decoded = await decodes(bo, "video/VP9")
        await decodes(bo, "video/VP9", more_than=decoded + 30)  # ada's, still VP9
    finally:
        await carol.close()
