"""A Chromium camera that does not simulcast (the fake 640x480 camera sends one layer)
is asked for less when its only subscriber reports 80 kbit/s, and for more again when
that subscriber recovers: Chrome's own send target (`targetBitrate` of its
outbound-rtp) follows the SFU's REMB.

The subscriber is an aiortc client that plays a browser on a slow link by sending the
REMB itself (its own estimator off: no abs-send-time).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.conftest import OpenPage, RoomPage
from tests.media.support import MediaClient, send_remb, without_abs_send_time
from tests.support.participants import SocketParticipant, issue_token
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TARGET = """
async () => {
  const pc = window.pairwiseDebug.room.media.pc;
  if (!pc) return null;
  let target = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.targetBitrate) target = s.targetBitrate;
  });
  return target;
}
"""


async def subscriber(base_url: str) -> MediaClient:
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "bo", "Bo", "mentee")
    socket = await SocketParticipant(base_url, token).connect()
    await socket.join(media_mode="video")
    bo = MediaClient(socket, decode=False, munge_answer=without_abs_send_time)
    bo.receive_only()
    await bo.connect()
    return bo


async def target_while(page: RoomPage, bo: MediaClient, remb: int, check: Any) -> float:
    """Report `remb` from bo every 0.25 s until Chrome's video target passes `check`."""
    target = None
    for _ in range(120):  # 30 s
        send_remb(bo, remb)
        target = await page.evaluate(TARGET)
        if target is not None and check(target):
            return float(target)
        await page.page.wait_for_timeout(250)
    raise AssertionError(f"Chrome's video target stayed at {target}")


async def test_chromium_sends_less_while_its_subscriber_is_slow_and_more_after(
    open_page: OpenPage, base_url: str
) -> None:
    ada = await open_page("ada", role="mentor", diag=("debug-handle",))
    bo = await subscriber(base_url)
    try:
        await eventually(lambda: any(r.frames > 10 for r in bo.of_kind("video")), timeout=20)
        before = await target_while(ada, bo, 5_000_000, lambda t: t > 300_000)
        capped = await target_while(ada, bo, 80_000, lambda t: t <= 160_000)
        after = await target_while(ada, bo, 5_000_000, lambda t: t > 300_000)
        assert capped < before and after > capped * 2
    finally:
        await bo.close()
