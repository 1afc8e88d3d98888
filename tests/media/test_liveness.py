"""The liveness rule in-process, judged with a clock ahead (`LadderMonitor.check(now)`):
a participant who sends nothing and is not heard from for `media_liveness_seconds` is
stepped down for `consent_expired` and told, not before. The real-network version is tests/reliability/test_liveness.py."""

from __future__ import annotations

import time
from typing import Any

import pytest

from server.rooms.model import MediaMode
from tests.media.conftest import Join
from tests.media.test_continuity import sfu_of, watched
from tests.support.parts import ServerParts

pytestmark = pytest.mark.slow


async def test_a_quiet_participant_unheard_from_is_stepped_down_and_told(
    join: Join, server: Any
) -> None:
    ada, bo = await watched(join)
    ladder = sfu_of(server).ladder
    registry = ServerParts(server.app).rooms
    await ada.socket.call("media_control", {"audio": False, "video": False})
    for track in ada.tracks.values():
        track.silent = True
    liveness = ServerParts(server.app).settings.media_liveness_seconds
    # Three judgements with no await between them, so no packet can arrive meanwhile (an
    # aiortc client sends RTCP about every second even with nothing to send).
    now = time.monotonic()
    ladder.check(now)  # what arrived so far is heard at `now`
    ladder.check(now + liveness - 0.5)  # quiet, but not for long enough
    assert registry.participant("pair-1", "ada").media_mode == MediaMode.VIDEO
    ladder.check(now + liveness + 0.5)
    failed = await ada.socket.wait_for("media_failed")
    assert failed["reason"] == "consent_expired"
    moved = await bo.socket.wait_for("media_mode", {"identity": "ada", "mode": "text"})
    assert moved["reason"] == "consent_expired"
