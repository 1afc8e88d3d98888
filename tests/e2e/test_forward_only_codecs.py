"""VP9 and AV1 between Chromium pages, forwarded without decoding; an aiortc
participant and a Chromium page who cannot decode them in the same room get the audio
and a reason instead of those videos (server/media/forward_only.py), which the page
shows on the tiles.

One page prefers VP9, the other AV1 (an init script puts it first in every video
transceiver's `setCodecPreferences`), as a browser configured for them would; another
has neither, as a browser without them would (an init script hides them from the
capabilities and from every offer and answer). The VP9 page's camera is 1280x720, so
it sends simulcast, and its "screen" is a second capture of the fake camera (no
capture picker here); the other pages' cameras are 640x360 (one layer each: encoding
is most of this test's cost, AV1's above all).
"""

from __future__ import annotations

import asyncio
import json
import re
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

WITHOUT_VP9_AND_AV1 = """
() => {
  const supported = (c) => !/^video\\/(VP9|AV1)$/i.test(c.mimeType);
  for (const Rtp of [RTCRtpReceiver, RTCRtpSender]) {
    const capabilities = Rtp.getCapabilities;
    Rtp.getCapabilities = (kind) => {
      const found = capabilities.call(Rtp, kind);
      return found && { ...found, codecs: found.codecs.filter(supported) };
    };
  }
  for (const name of ["createOffer", "createAnswer"]) {
    const create = RTCPeerConnection.prototype[name];
    RTCPeerConnection.prototype[name] = function (...args) {
      const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
      for (const transceiver of this.getTransceivers()) {
        if (transceiver.receiver.track.kind === "video" && transceiver.currentDirection !== "stopped") {
          transceiver.setCodecPreferences(codecs);
        }
      }
      return create.apply(this, args);
    };
  }
}
"""

CAMERA_AND_A_SCREEN = """
(width, height) => {
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints = {}) => {
    if (constraints.video) {
      const video = typeof constraints.video === "object" ? constraints.video : {};
      constraints = { ...constraints, video: { ...video, width, height } };
    }
    return original(constraints);
  };
  devices.getDisplayMedia = () => original({ video: { width: 640, height: 360 } });
}
"""


AUDIO_PACKETS = """
async () => {
  const stats = await window.pairwiseDebug.room.media.pc.getStats();
  return Object.fromEntries([...stats.values()]
    .filter((s) => s.type === "inbound-rtp" && s.kind === "audio")
    .map((s) => [s.ssrc, s.packetsReceived]));
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
        height: s.frameHeight || 0,
        rid: s.rid || null,
        limited: s.qualityLimitationReason || null,
        active: s.active,
      });
    }
  });
  return out;
}
"""


async def open_with(open_page: OpenPage, identity: str, script: str, **options: Any) -> RoomPage:
    """`identity`'s page with `script` run before the client's own in every document."""
    person = await open_page(identity, diag=("debug-handle",), join=False, **options)
    await person.page.add_init_script(script)
    await person.page.reload()
    return await person.join()


def frames_of(stats: list[dict[str, Any]], kind: str, codec: str) -> int:
    return max((s["frames"] for s in stats if s["type"] == kind and s["codec"] == codec), default=0)


async def decodes(
    page: RoomPage, codec: str, more_than: int = 0, sender: RoomPage | None = None
) -> int:
    """Wait until `page` has decoded more than `more_than` frames of `codec` (a failure
    says what `page` receives and `sender` sends)."""

    async def check() -> int:
        return max(0, frames_of(await page.evaluate(VIDEO_STATS), "inbound-rtp", codec) - more_than)

    try:
        return more_than + await eventually(
            check, timeout=30, interval=0.5, what=f"{codec} decoded"
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}; {await video_of(page, sender)}") from None


async def decodes_tall(page: RoomPage, codec: str, height: int, sender: RoomPage) -> int:
    """Wait until `page` decodes `codec` frames at least `height` lines tall; returns
    the tallest."""

    async def check() -> int:
        stats = await page.evaluate(VIDEO_STATS)
        tall = [s["height"] for s in stats if s["type"] == "inbound-rtp" and s["codec"] == codec]
        return max((h for h in tall if h >= height), default=0)

    try:
        return await eventually(check, timeout=20, interval=0.5, what=f"{codec} {height} tall")
    except AssertionError as failure:
        raise AssertionError(f"{failure}; {await video_of(page, sender)}") from None


async def video_of(page: RoomPage, sender: RoomPage | None) -> str:
    received = [s for s in await page.evaluate(VIDEO_STATS) if s["type"] == "inbound-rtp"]
    sent = await sender.evaluate(VIDEO_STATS) if sender is not None else []
    trace = await page.evaluate("() => window.pairwiseDebug.state().trace.slice(-6)")
    return f"received {received}, sent {[s for s in sent if s['type'] == 'outbound-rtp']}, {trace}"


async def hears(page: RoomPage, more_than: dict[str, int] | None = None) -> dict[str, int]:
    """Wait until two audios reach `page`, each past `more_than` packets (by SSRC)."""
    before = more_than or {}

    async def check() -> dict[str, int] | None:
        packets: dict[str, int] = await page.evaluate(AUDIO_PACKETS)
        grown = [ssrc for ssrc, n in packets.items() if n > before.get(ssrc, 0) + 25]
        return packets if len(grown) >= 2 else None

    return await eventually(check, timeout=20, interval=0.5, what="two audios arriving")


async def test_vp9_and_av1_are_forwarded_between_chromium_pages_and_vp8_only_clients_keep_the_audio_and_a_reason(
    open_page: OpenPage, base_url: str
) -> None:
    ada = await open_with(
        open_page,
        "ada",
        f"({PREFER})({json.dumps('video/VP9')}); ({CAMERA_AND_A_SCREEN})(1280, 720)",
        role="mentor",
    )
    # Bo shows ada's tile at twice its CSS size (device pixels): tall enough for the
    # full layer (the SFU sends no layer taller than the tile needs).
    bo = await open_with(
        open_page,
        "bo",
        f"({PREFER})({json.dumps('video/AV1')}); ({CAMERA_AND_A_SCREEN})(640, 360)",
        device_scale_factor=2,
    )
    await expect(bo.tile("ada")).to_have_class("tile has-video", timeout=15_000)

    # Ada's camera goes out as VP9, bo's as AV1, and each decodes the other's (the SFU
    # has neither decoder).
    decoded = await decodes(bo, "video/VP9", more_than=10, sender=ada)
    await decodes(bo, "video/VP9", more_than=decoded + 30, sender=ada)
    await decodes(ada, "video/AV1", more_than=10, sender=bo)
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

    # Dan's browser has neither VP9 nor AV1: both tiles say why they show initials, and
    # both audios play.
    dan = await open_with(
        open_page, "dan", f"({WITHOUT_VP9_AND_AV1})(); ({CAMERA_AND_A_SCREEN})(640, 360)"
    )
    for owner in ("ada", "bo"):
        tile = dan.tile(owner)
        await expect(tile.locator(".tile-state")).to_have_text(
            "Video not supported by this browser", timeout=15_000
        )
        await expect(tile).to_have_attribute("aria-label", re.compile("video not supported"))
        await expect(tile).not_to_have_class(re.compile("has-video"))
    await hears(dan, more_than=await hears(dan))
    sdp = await dan.evaluate("() => window.pairwiseDebug.room.media.pc.localDescription.sdp")
    assert "VP9" not in sdp and "AV1" not in sdp, sdp

    # Ada's 720p camera is VP9 simulcast (each layer L1T3: without, Chrome sends only
    # the 320x180 one), and bo gets a layer of 540 lines or more through the SFU (by
    # now the estimates have had time to grow to it). In grid view (ada's tile 311 CSS
    # pixels tall here, 622 device pixels): in speaker view her tile is in the strip
    # whenever the SFU names another speaker (1 run of 2: 114 CSS pixels), and the SFU
    # sends no layer taller than the tile needs: a CI run got only the 360-line one.
    await bo.page.keyboard.press("w")
    await expect(bo.tile("ada")).to_have_attribute("data-place", "grid")
    assert await decodes_tall(bo, "video/VP9", 540, sender=ada) >= 540

    # Ada shares her screen (VP9 too): dan's place for it says why it shows nothing,
    # and goes when she stops.
    await ada.page.get_by_role("button", name="Share screen").click()
    share = dan.page.locator('#screens .screen-share[data-identity="ada"]')
    await expect(share.locator(".screen-state")).to_have_text(
        "Video not supported by this browser", timeout=15_000
    )
    await expect(share).to_have_attribute("aria-label", re.compile("video not supported"))
    await ada.page.get_by_role("button", name="Stop sharing").click()
    await expect(share).to_have_count(0)
