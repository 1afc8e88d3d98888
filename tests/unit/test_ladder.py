"""One fallback ladder (rooms/model.py): the steps the server takes by itself and the
steps the session log counts as fallbacks read the same order."""

from __future__ import annotations

from itertools import pairwise

from server.rooms.model import FALLBACK_ORDER, LADDER, MediaMode, choice_reason
from server.sessionlog.sessions import is_fallback


def test_the_ladder_runs_video_audio_text_phone_and_the_server_stops_at_text() -> None:
    assert [str(m) for m in FALLBACK_ORDER] == ["video", "audio", "text", "phone"]
    assert LADDER == (MediaMode.VIDEO, MediaMode.AUDIO, MediaMode.TEXT)


def test_every_step_down_the_ladder_is_a_fallback_and_no_step_up_is() -> None:
    for better, worse in pairwise(FALLBACK_ORDER):
        assert is_fallback(better, worse), (better, worse)
        assert not is_fallback(worse, better), (worse, better)
    # The session log stores plain strings: the same answers.
    assert is_fallback("text", "phone") and not is_fallback("phone", "audio")
    assert is_fallback("video", "phone")


def test_a_chosen_step_or_an_unknown_mode_is_no_fallback() -> None:
    assert not is_fallback("video", "text", choice_reason("audio_off"))
    assert not is_fallback(None, "text")
    assert not is_fallback("video", "hologram")
