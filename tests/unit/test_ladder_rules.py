"""The fallback ladder's rules (server/media/ladder_rules.py) as a pure function of (state,
observation, now): each rule steps down and back up, with a made-up clock, in microseconds.
The same rules over real RTP are tests/media/test_health.py, test_liveness.py and
test_continuity.py."""

from __future__ import annotations

from typing import Any

import pytest

from server.config import load_settings
from server.media.ladder_rules import (
    CLIMB_TRIAL_SECONDS,
    MAX_RECOVER_SECONDS,
    Fail,
    Feed,
    LadderRules,
    LadderState,
    Observation,
    Step,
    after_step,
)
from server.media.workers.worker import ladder_memory, ladder_state
from server.rooms.model import MediaMode

AUDIO, VIDEO, TEXT, PHONE = MediaMode.AUDIO, MediaMode.VIDEO, MediaMode.TEXT, MediaMode.PHONE

RULES = LadderRules.from_settings(
    load_settings(
        media_ice_timeout_seconds=4.0,
        media_silence_seconds=5.0,
        media_liveness_seconds=3.0,
        media_loss_step_down_percent=20.0,
        media_recover_seconds=6.0,
    )
)
CONNECTED = 100.0  # when the connection formed (monotonic seconds)


def flowing(now: float, held: bool = False) -> Feed:
    """Frames arriving: the last one a moment ago."""
    return Feed(last_frame_at=now - 0.1, expected_since=CONNECTED, held=held)


def stopped(at: float, held: bool = False) -> Feed:
    return Feed(last_frame_at=at, expected_since=CONNECTED, held=held)


def paused() -> Feed:
    return Feed(paused=True, expected_since=CONNECTED)


class Participant:
    """One participant as the monitor drives them: every tick the rules decide, and a
    step is applied to their mode the way the monitor applies it."""

    def __init__(self, mode: MediaMode = VIDEO) -> None:
        self.mode = mode
        self.state = LadderState()

    def tick(self, now: float, **seen: Any) -> Fail | Step | None:
        fields: dict[str, Any] = {
            "created_at": CONNECTED - 1,
            "connected_at": CONNECTED,
            "connected": True,
            "audio": flowing(now),
            "video": flowing(now),
            **seen,
        }
        decision = RULES.decide(self.state, Observation(mode=self.mode, **fields), now)
        self.state = decision.state
        if isinstance(decision.action, Step):
            self.apply(decision.action, now)
        return decision.action

    def ticks(self, start: float, end: float, **seen: Any) -> list[Fail | Step]:
        """Every half second from `start` until before `end`: what the rules did."""
        actions = []
        for i in range(int((end - start) * 2)):
            action = self.tick(start + i / 2, **seen)
            if action is not None:
                actions.append(action)
        return actions

    def apply(self, step: Step, now: float) -> None:
        state = after_step(self.state, self.mode, step.mode, step.reason, step.down, now)
        if state is not None:
            self.state, self.mode = state, step.mode

    def connection_lost(self, reason: str, now: float = 150.0) -> None:
        self.apply(Step(TEXT, reason, down=True), now)

    def recovers_at(self, start: float, within: float = 30.0, **seen: Any) -> float | None:
        """When, ticking from `start` with the same media, the rules step them back up
        (None if not `within` seconds)."""
        for i in range(int(within * 2)):
            now = start + i / 2
            action = self.tick(now, **seen)
            if action is not None:
                assert action == Step(action.mode, "media_recovered", down=False), action
                return now - start
        return None


# -- a dead connection ---------------------------------------------------------------------


def test_a_dead_connection_is_closed_for_its_reason_and_a_live_one_is_not() -> None:
    ada = Participant()
    assert ada.tick(200.0) is None
    assert ada.tick(200.5, dead="dtls_failed") == Fail("dtls_failed")
    # Even before ICE completed, and even when nothing else is wrong.
    assert ada.tick(200.5, dead="ice_failed", connected_at=None) == Fail("ice_failed")


@pytest.mark.parametrize("reason", ["ice_failed", "connection_closed", "ice_timeout"])
def test_after_a_dead_connection_clean_audio_brings_video_back(reason: str) -> None:
    ada = Participant()
    ada.connection_lost(reason)
    assert ada.mode == TEXT and ada.state.ceiling == VIDEO
    # The rebuilt connection: the client sends audio only while below video, and the SFU
    # holds video; clean audio for media_recover_seconds is the evidence.
    held = Feed(expected_since=CONNECTED, held=True)
    assert ada.recovers_at(200.0, video=held) == RULES.recover_seconds
    assert ada.mode == VIDEO and ada.state == LadderState(video_back_at=206.0)


def test_a_connection_that_never_connects_is_closed_at_the_ice_timeout() -> None:
    ada = Participant()
    never = {"connected_at": None, "connected": False, "audio": None, "video": None}
    assert ada.tick(CONNECTED - 1 + 3.9, **never) is None
    assert ada.tick(CONNECTED - 1 + 4.0, **never) == Fail("ice_timeout")
    # Connected but not (yet, or any longer) in the `connected` state: no judgement at all.
    assert ada.tick(500.0, connected=False, audio=None, video=None, quiet=60.0) is None


# -- silence ----------------------------------------------------------------------------------


def test_video_silence_steps_down_to_audio_and_its_frames_bring_it_back() -> None:
    ada = Participant()
    assert ada.tick(114.9, video=stopped(110.0)) is None
    assert ada.tick(115.0, video=stopped(110.0)) == Step(AUDIO, "no_video_rtp", down=True)
    assert ada.mode == AUDIO and ada.state.ceiling == VIDEO and not ada.state.network
    # Not a network step: clean audio with video held back is no evidence that video fits.
    assert ada.recovers_at(120.0, video=stopped(110.0, held=True)) is None
    assert ada.mode == AUDIO
    # Video frames again (held, but read and counted).
    # Video frames for a moment, then none again: not enough.
    assert ada.recovers_at(160.0, video=flowing(160.0, held=True)) is None
    assert ada.recovers_at(200.0) == RULES.recover_seconds
    assert ada.mode == VIDEO


def test_audio_and_video_silent_together_step_down_to_text() -> None:
    ada = Participant()
    # Audio's last packet may come a frame interval after video's: half the silence is one loss.
    assert ada.tick(115.0, video=stopped(110.0), audio=stopped(112.5)) == Step(
        TEXT, "no_rtp", down=True
    )
    bo = Participant()
    assert bo.tick(115.0, video=stopped(110.0), audio=stopped(112.6)) == Step(
        AUDIO, "no_video_rtp", down=True
    )
    assert ada.state.network  # no_rtp is the network: clean audio vouches for video
    held = Feed(expected_since=CONNECTED, held=True)
    assert ada.recovers_at(200.0, video=held) == RULES.recover_seconds
    assert ada.mode == VIDEO


def test_audio_silence_in_audio_mode_steps_down_to_text_and_audio_brings_it_back() -> None:
    ada = Participant(AUDIO)
    assert ada.tick(114.9, audio=stopped(110.0), video=None) is None
    assert ada.tick(115.0, audio=stopped(110.0), video=None) == Step(
        TEXT, "no_audio_rtp", down=True
    )
    assert ada.recovers_at(200.0, audio=stopped(110.0), video=None) is None
    assert ada.recovers_at(300.0) == RULES.recover_seconds
    assert ada.mode == AUDIO  # never above the mode they had, though video flows too


def test_silence_counts_from_when_frames_were_expected() -> None:
    ada = Participant()
    # No publication at all: silent since the connection formed.
    assert ada.tick(CONNECTED + 4.9, video=None) is None
    assert ada.tick(CONNECTED + 5.0, video=None) == Step(AUDIO, "no_video_rtp", down=True)
    # Camera turned on again at 150: silence counts from then, not from the last frame.
    bo = Participant()
    back_on = Feed(last_frame_at=110.0, expected_since=150.0)
    assert bo.tick(154.9, video=back_on) is None
    assert bo.tick(155.0, video=back_on) == Step(AUDIO, "no_video_rtp", down=True)


def test_no_frames_expected_is_no_silence() -> None:
    ada = Participant()
    assert ada.ticks(100.0, 200.0, video=paused()) == []  # camera off, paused by the SFU
    assert ada.ticks(100.0, 200.0, video=stopped(100.0), sends_video=False) == []
    bo = Participant(AUDIO)
    assert bo.ticks(100.0, 200.0, audio=paused(), video=None) == []  # muted
    assert bo.ticks(100.0, 200.0, audio=stopped(100.0), video=None, sends_audio=False) == []
    assert ada.mode == VIDEO and bo.mode == AUDIO


# -- liveness: a participant who sends nothing --------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "sends_audio"), [(VIDEO, False), (AUDIO, False), (VIDEO, True), (AUDIO, True)]
)
def test_unheard_from_is_dead_only_when_no_media_would_show_it(
    mode: MediaMode, sends_audio: bool
) -> None:
    ada = Participant(mode)
    # The camera is off; in video mode the microphone alone does not cover them.
    covered = mode == AUDIO and sends_audio
    quiet = {"sends_video": False, "sends_audio": sends_audio, "video": paused()}
    assert ada.tick(200.0, quiet=2.9, **quiet) is None
    expected = None if covered else Fail("consent_expired")
    assert ada.tick(200.0, quiet=3.0, **quiet) == expected


def test_a_publisher_is_judged_by_its_frames_not_by_liveness() -> None:
    ada = Participant()
    assert ada.ticks(200.0, 210.0, quiet=30.0) == []


def test_after_consent_expired_a_connection_heard_from_brings_video_back() -> None:
    ada = Participant()
    ada.connection_lost("consent_expired")
    nothing = {"sends_video": False, "sends_audio": False, "audio": paused(), "video": paused()}
    assert ada.recovers_at(200.0, loss_percent=25.0, **nothing) is None  # not clean
    assert ada.recovers_at(300.0, **nothing) == RULES.recover_seconds
    assert ada.mode == VIDEO


# -- loss -------------------------------------------------------------------------------------


def test_loss_in_consecutive_samples_steps_video_down_to_audio() -> None:
    ada = Participant()
    assert ada.ticks(200.0, 210.0, loss_percent=25.0, lossy_samples=1) == []
    assert ada.tick(210.0, loss_percent=25.0, lossy_samples=2) == Step(
        AUDIO, "high_loss", down=True
    )
    # Loss alone never takes audio further down.
    assert ada.ticks(211.0, 230.0, loss_percent=60.0, lossy_samples=9) == []
    assert ada.mode == AUDIO


def test_after_loss_clean_audio_brings_video_back_and_lossy_audio_does_not() -> None:
    ada = Participant()
    ada.tick(200.0, loss_percent=25.0, lossy_samples=2)
    held = Feed(expected_since=CONNECTED, held=True)
    assert ada.recovers_at(210.0, video=held, loss_percent=20.0) is None
    assert ada.recovers_at(300.0, video=held, loss_percent=19.9) == RULES.recover_seconds
    assert ada.mode == VIDEO


# -- failed climbs ---------------------------------------------------------------------------


HELD = Feed(expected_since=CONNECTED, held=True)  # below video: the SFU holds it


def climbs_after(ada: Participant, start: float) -> float | None:
    """Seconds of clean audio (video held) from `start` until the rules climb to video."""
    wait = ada.recovers_at(start, within=100.0, video=HELD)
    assert ada.mode == VIDEO, ada.mode
    return wait


def test_climbs_the_network_undoes_wait_twice_as_long_each_time_up_to_a_limit() -> None:
    """A lasting cap that audio fits and video does not: each climb to video fails a few
    seconds later (loss), and the next climb waits twice the clean time of the last."""
    ada = Participant()
    ada.tick(200.0, loss_percent=25.0, lossy_samples=2)
    waits, now = [], 210.0
    for _ in range(5):
        waits.append(climbs_after(ada, now))
        now += waits[-1] + 4
        assert ada.tick(now, loss_percent=25.0, lossy_samples=2) == Step(
            AUDIO, "high_loss", down=True
        )
        now += 1
    assert waits == [6.0, 12.0, 24.0, MAX_RECOVER_SECONDS, MAX_RECOVER_SECONDS]
    assert ada.state.failed_climbs == 5


def test_a_climb_that_holds_ends_the_back_off_and_a_late_step_down_is_no_failed_climb() -> None:
    ada = Participant()
    ada.tick(200.0, loss_percent=25.0, lossy_samples=2)
    climbs_after(ada, 210.0)  # up at 216
    ada.tick(218.0, loss_percent=25.0, lossy_samples=2)  # undone 2 s later
    assert ada.state.failed_climbs == 1
    assert climbs_after(ada, 220.0) == 12.0  # up at 232
    # on video, clean, for CLIMB_TRIAL_SECONDS: the climb held
    assert ada.tick(232.0 + CLIMB_TRIAL_SECONDS - 0.5) is None
    assert ada.state.failed_climbs == 1
    assert ada.tick(232.0 + CLIMB_TRIAL_SECONDS) is None
    assert ada.state.failed_climbs == 0
    # a step down later is a new fault: the usual wait
    ada.tick(300.0, loss_percent=25.0, lossy_samples=2)
    assert ada.state.failed_climbs == 0
    assert climbs_after(ada, 301.0) == RULES.recover_seconds


def test_failed_climbs_outlive_a_media_worker() -> None:
    state = LadderState(ceiling=VIDEO, last_set=AUDIO, network=True, failed_climbs=3)
    assert ladder_state(ladder_memory(state)) == state


# -- recovery ---------------------------------------------------------------------------------


def test_recovery_needs_clean_media_for_the_whole_time() -> None:
    ada = Participant()
    ada.tick(115.0, video=stopped(110.0))
    assert ada.ticks(200.0, 205.5) == []  # 5.5 s of video: not yet
    assert ada.tick(205.5, video=stopped(204.0)) is None  # a stall restarts the count
    assert ada.state.healthy_since is None
    assert ada.ticks(206.0, 212.0) == []
    assert ada.tick(212.0) == Step(VIDEO, "media_recovered", down=False)


def test_recovery_goes_up_one_step_when_only_audio_flows() -> None:
    ada = Participant()
    ada.tick(115.0, video=stopped(110.0), audio=stopped(110.0))
    assert ada.mode == TEXT
    assert ada.recovers_at(200.0, video=stopped(110.0)) == RULES.recover_seconds
    assert ada.mode == AUDIO  # video is not flowing (and not held): audio is the best


def test_a_mode_the_client_chooses_ends_the_recovery() -> None:
    ada = Participant()
    ada.tick(115.0, video=stopped(110.0))
    assert ada.mode == AUDIO
    ada.mode = TEXT  # the participant chose text themselves
    assert ada.ticks(200.0, 260.0) == []
    assert ada.state == LadderState() and ada.mode == TEXT
    # Without the choice, the same media brings them back.
    bo = Participant()
    bo.tick(115.0, video=stopped(110.0))
    assert bo.recovers_at(200.0) == RULES.recover_seconds


# -- back on video: the video starts again from nothing ------------------------------------------


def stepped_up_from_text() -> tuple[Participant, float]:
    """Ada, stepped down to text by a network fault and back up to video on clean audio
    (her video held meanwhile); returns her and when she was stepped up."""
    ada = Participant()
    ada.tick(115.0, video=stopped(110.0), audio=stopped(110.0))
    assert ada.mode == TEXT and ada.state.network
    held = stopped(110.0, held=True)
    up = 200.0 + ada.recovers_at(200.0, video=held)  # type: ignore[operator]
    assert ada.mode == VIDEO and ada.state.video_back_at == up
    return ada, up


def test_video_late_after_the_step_up_is_no_second_dip() -> None:
    ada, up = stepped_up_from_text()
    # The SFU released the video at the step up; the browser's first frame takes 7 s,
    # longer than the silence (5 s) but within the resume window (10 s).
    released = Feed(last_frame_at=110.0, expected_since=up)
    assert ada.ticks(up + 0.5, up + 7.0, video=released) == []
    assert ada.mode == VIDEO
    # Then frames come, pause 3 s while the encoder ramps up, and flow.
    assert ada.ticks(up + 7.0, up + 8.0) == []
    assert ada.ticks(up + 8.0, up + 11.0, video=stopped(up + 8.0)) == []
    assert ada.ticks(up + 11.0, up + 60.0) == []
    assert ada.mode == VIDEO


def test_no_video_at_all_after_the_step_up_steps_down_once_after_the_window() -> None:
    ada, up = stepped_up_from_text()
    released = Feed(last_frame_at=110.0, expected_since=up)
    window = RULES.video_resume_seconds
    assert ada.ticks(up + 0.5, up + window, video=released) == []
    assert ada.tick(up + window, video=released) == Step(AUDIO, "no_video_rtp", down=True)
    # Down once, and it stays down while no video comes (held again, audio clean).
    held = Feed(last_frame_at=110.0, expected_since=up, held=True)
    assert ada.ticks(up + window + 0.5, up + 60.0, video=held) == []
    assert ada.mode == AUDIO


def test_the_window_counts_from_the_step_up_even_if_the_release_comes_late() -> None:
    # The SFU's release (expected_since) comes through the event bus, maybe after the
    # next tick: the old frames' silence does not end the window early.
    ada, up = stepped_up_from_text()
    not_yet_released = stopped(110.0, held=True)
    window = RULES.video_resume_seconds
    assert ada.ticks(up + 0.5, up + window, video=not_yet_released) == []
    assert ada.tick(up + window, video=not_yet_released) == Step(AUDIO, "no_video_rtp", down=True)


def test_back_on_video_audio_and_video_silent_together_is_text_at_once() -> None:
    ada, up = stepped_up_from_text()
    # The network goes again: no window for that.
    gone = {"video": stopped(up + 1.0), "audio": stopped(up + 1.0)}
    assert ada.ticks(up + 1.5, up + 6.0, **gone) == []
    assert ada.tick(up + 6.0, **gone) == Step(TEXT, "no_rtp", down=True)


def test_a_climb_back_to_video_by_the_client_gets_the_same_window() -> None:
    ada = Participant()
    ada.tick(115.0, video=stopped(110.0), audio=stopped(110.0))
    assert ada.mode == TEXT
    held = stopped(110.0, held=True)
    assert ada.ticks(120.0, 121.0, video=stopped(110.0)) == []  # not held yet (event bus)
    assert ada.ticks(121.0, 124.0, video=held) == []  # shorter than the recovery
    ada.mode = VIDEO  # its page rebuilt the connection and chose video itself
    released = Feed(last_frame_at=110.0, expected_since=124.2)
    window = RULES.video_resume_seconds
    assert ada.ticks(124.0, 124.0 + window, video=released) == []
    assert ada.state.video_back_at == 124.0
    assert ada.tick(124.0 + window, video=released) == Step(AUDIO, "no_video_rtp", down=True)
    # Video never held (camera just turned on at join, say): the plain silence rule.
    bo = Participant(TEXT)
    assert bo.ticks(120.0, 125.0, video=stopped(110.0)) == []
    bo.mode = VIDEO
    on = Feed(last_frame_at=None, expected_since=125.0)
    assert bo.tick(129.9, video=on) is None
    assert bo.tick(130.0, video=on) == Step(AUDIO, "no_video_rtp", down=True)


# -- applying a step ---------------------------------------------------------------------------


def test_a_step_down_remembers_the_first_mode_and_never_goes_up() -> None:
    first = after_step(LadderState(), VIDEO, AUDIO, "no_video_rtp", down=True, now=10.0)
    assert first == LadderState(ceiling=VIDEO, last_set=AUDIO, network=False)
    second = after_step(first, AUDIO, TEXT, "no_rtp", down=True, now=11.0)
    assert second == LadderState(ceiling=VIDEO, last_set=TEXT, network=True)
    assert after_step(second, TEXT, AUDIO, "no_rtp", down=True, now=12.0) is None
    assert after_step(second, TEXT, TEXT, "ice_failed", down=True, now=12.0) is None
    # Back up below the ceiling keeps it; at the ceiling the step down is over, and back
    # on video the video resumes from then.
    assert after_step(second, TEXT, AUDIO, "media_recovered", down=False, now=13.0) == LadderState(
        ceiling=VIDEO, last_set=AUDIO, network=True
    )
    assert after_step(second, TEXT, VIDEO, "media_recovered", down=False, now=13.0) == LadderState(
        video_back_at=13.0
    )


def test_someone_on_the_phone_is_left_alone() -> None:
    assert after_step(LadderState(), PHONE, TEXT, "ice_failed", down=True, now=1.0) is None
    ada = Participant(PHONE)
    ada.state = LadderState(ceiling=VIDEO, last_set=PHONE)
    assert ada.ticks(200.0, 220.0) == []


def test_the_rules_take_their_thresholds_from_the_settings() -> None:
    assert vars(RULES) == {
        "ice_timeout_seconds": 4.0,
        "silence_seconds": 5.0,
        "liveness_seconds": 3.0,
        "loss_step_down_percent": 20.0,
        "recover_seconds": 6.0,
        "video_resume_seconds": 10.0,  # twice the silence
    }
