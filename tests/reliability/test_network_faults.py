"""Network faults between a participant and the server: media steps down the fallback ladder
for the right reason and comes back, and chat loses nothing.

The participant runs inside a network namespace joined to this machine by a veth pair;
the fault is applied there (nftables drops, `tc tbf` caps the rate: this kernel has no
netem). The server is a real subprocess on the veth address with small media thresholds
(harness.FAST_MEDIA: 2 s of silence steps down, 2 s of clean media steps back up).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability.harness import FAST_MEDIA, FaultRoom, ModeChange, fault_room, write_frames

pytestmark = [pytest.mark.slow]

LADDER = ["video", "audio", "text"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_frames(tmp_path_factory.mktemp("media") / "frames.pickle")


@pytest.fixture
async def room(tmp_path: Path, frames: Path) -> AsyncIterator[FaultRoom]:
    async with fault_room(tmp_path, frames) as room:
        yield room


def is_down(change: ModeChange) -> bool:
    return LADDER.index(change.mode) > LADDER.index(change.previous)


async def assert_chat_lost_nothing(room: FaultRoom) -> None:
    outcome = await room.chat_outcome()
    assert outcome.pending == [], f"a message was never acked: {outcome.pending}"
    assert len(outcome.acked) >= 10, outcome
    assert outcome.missing == [], f"acked but not stored: {outcome.missing}"
    assert outcome.duplicates == [], f"stored twice: {outcome.duplicates}"
    assert set(outcome.stored) == set(outcome.acked)


async def test_udp_blocked_steps_down_to_text_and_recovers(room: FaultRoom) -> None:
    blocked = room.apply("udp_blocked")
    # Neither audio nor video RTP arrives: video → text in one step, for `no_rtp`.
    down = await room.wait_mode(blocked, is_down, timeout=10)
    assert (down.previous, down.mode, down.reason) == ("video", "text", "no_rtp")
    await asyncio.sleep(2)  # still blocked: nothing brings it back
    assert [m.mode for m in room.modes_since(blocked)] == ["text"]

    healed = room.heal()
    # The same ICE connection carries media again (consent has not expired yet), and the
    # monitor steps back up to video, possibly through audio, never above video.
    back = await room.wait_mode(healed, lambda m: m.mode == "video", timeout=15)
    ups = room.modes_since(healed)
    assert back.reason == "media_recovered"
    assert all(m.reason == "media_recovered" and not is_down(m) for m in ups), ups
    await room.wait_video_flowing()
    await assert_chat_lost_nothing(room)


async def test_rate_capped_at_300_kbit_steps_video_down_to_audio_and_recovers(
    room: FaultRoom,
) -> None:
    capped = room.apply("rate_300k")
    # ~550 kbit/s of video and audio cannot fit: video → audio (the loss the cap causes,
    # or video frames that no longer complete). Audio fits, so it never goes to text.
    down = await room.wait_mode(capped, is_down, timeout=12)
    assert (down.previous, down.mode) == ("video", "audio"), down
    assert down.reason in ("high_loss", "no_video_rtp"), down
    # Still capped, audio alone fits: nothing goes to text. Video may be tried again: after
    # `media_recover_seconds` (2 s here) of clean audio the monitor climbs to video
    # (ladder_rules.py: after a network step down, clean audio is the evidence); this
    # publisher (aiortc) then often stays on video under the cap: its video trickles
    # through with loss under the threshold (seen: 17 %). A CI run saw that climb within
    # these 3 s.
    await asyncio.sleep(3)
    modes = [m.mode for m in room.modes_since(capped)]
    assert "text" not in modes and modes[0] == "audio", modes

    room.heal()
    # Back on video and staying there (the latest change): by a climb after the heal, or
    # by one under the cap already (above; a CI run that saw it waited in vain for a
    # climb after the heal).
    back = await room.wait_mode(
        capped, lambda m: m.mode == "video" and m is room.modes[-1], timeout=25
    )
    assert (back.previous, back.reason) == ("audio", "media_recovered")
    await room.wait_video_flowing()
    await assert_chat_lost_nothing(room)


async def test_ten_percent_loss_keeps_video_below_the_step_down_threshold(
    room: FaultRoom,
) -> None:
    threshold = float(FAST_MEDIA.get("PAIRWISE_MEDIA_LOSS_STEP_DOWN_PERCENT", "20"))
    lossy = room.apply("loss_10")
    losses: list[float] = []
    frames_before = await room.video_frames()
    for _ in range(8):  # four 2 s samples of the SFU's loss figure
        await asyncio.sleep(1)
        losses.append((await room.stats())["loss_percent"])
    frames_during = await room.video_frames() - frames_before
    healed = room.heal()
    await asyncio.sleep(4)
    # The rule: video steps down for loss at or above the threshold (20 %) in
    # LOSSY_SAMPLES consecutive samples. 10 % random loss each way measures below it on
    # average; one 2 s sample of ~130 packets can land above it (seen: 20.45 %), which is
    # why one sample alone never steps down. So the participant keeps video throughout,
    # and video frames keep reaching the SFU.
    assert 0 < statistics.mean(losses) < threshold, losses
    assert frames_during > 8 * 15 * 0.5, (frames_during, losses)
    changes = [(m.previous, m.mode, m.reason, round(m.at - lossy, 1)) for m in room.modes]
    assert room.modes_since(lossy) == [], (
        f"stepped down under {max(losses):.0f} % loss (healed at {healed - lossy:.1f} s): {changes}"
    )
    await assert_chat_lost_nothing(room)


# UDP blocked past ICE consent expiry (a rebuild that fails while blocked, then video
# again) is tested in Chromium: tests/e2e/test_network_faults.py
# `test_udp_blocked_mid_call_then_back_on_video[30]`; the server-side rule alone in
# tests/media/test_continuity.py.
