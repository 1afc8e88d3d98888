"""The fallback ladder's rules: from what a connection showed to a step down or back up.

`LadderRules.decide(state, observation, now)` is a pure function (no clock of its own, no
asyncio, no aiortc, no SFU): the monitor (ladder_monitor.py) feeds it an `Observation` of
each participant's connection every tick and carries out what it returns. The rules:

- The connection is dead (aiortc says `failed` or `closed`: ICE or DTLS failed, the far
  end closed it, ICE consent expired) → it is closed, the participant moves to text
  for that reason and their client gets `media_failed` to rebuild it. The state change
  event does this at once; the tick is the safety net.
- ICE never completed within `media_ice_timeout_seconds` → the connection is closed
  and the participant moves to text (`ice_timeout`); ICE failed → text (`ice_failed`).
- No video frames for `media_silence_seconds` while the camera is on → audio
  (`no_video_rtp`), or text if the audio is silent too (`no_rtp`); in audio mode, no
  audio frames → text (`no_audio_rtp`). Silence alone does not close the connection:
  the same ICE path carries media again the moment the network does (UDP blocked for
  12 s came back to video 5.2 s after it returned, docs/benchmarks.md), while a new
  connection could only form after the fault cleared. If the silence outlasts ICE
  consent (~31 s), aiortc closes the connection and the first rule takes over.
  Consent loss is therefore noticed at `media_silence_seconds` (5 s) through this rule
  whenever the participant sends audio or video: the step down (`no_rtp`) reaches the
  web client as its `media_mode`, and the client rebuilds its connection itself when
  its own ICE says `disconnected` (+3 s) or, at the latest, 8 s after the step.
- A participant the silence rule does not cover (muted with the camera off, or muted in
  audio mode) sends no RTP, so nothing above would notice their connection die before
  consent expiry (~31 s). For them the evidence is `Liveness` (liveness.py): any packet
  on the transport (receiver reports for what they receive), and otherwise an ICE
  consent check the SFU sends after 1 s of quiet. Nothing heard for
  `media_liveness_seconds` → the connection is closed as dead (`consent_expired`: text,
  `media_failed`, the client rebuilds). Their way back up is a connection heard from
  (they send no frames to judge by), for `media_recover_seconds`.
- Inbound loss at or above `media_loss_step_down_percent` in `LOSSY_SAMPLES`
  consecutive samples, in video mode → audio (`high_loss`). One 2 s sample is noisy
  (10 % random loss has measured 20.5 % in one sample), and only the media streams
  count: the retransmission (RTX) stream's own sequence gaps are not media lost.
- After stepping someone down, media that flows cleanly again for
  `media_recover_seconds` brings them back up (`media_recovered`), never above the
  mode they had; a mode the client sets itself ends that.
- A climb back to video that the network undoes within `CLIMB_TRIAL_SECONDS` failed,
  and each failure in a row doubles the clean time the next climb waits for (up to
  `MAX_RECOVER_SECONDS`); video that holds that long ends the back-off. Under a lasting
  cap that audio fits and video does not, the monitor would otherwise climb to video
  after every `media_recover_seconds` of clean audio and step down again seconds
  later: the tile flaps for everyone, and the link is overfull at every try.
- Back on video after a time below it with the video held (the monitor stepped them up
  on clean audio, or their page climbed by itself), the video starts from nothing: the
  page sent none while below video, and only starts its camera again when the
  `media_mode` event reaches it. Before, `no_video_rtp` gave that start the same 5 s
  as video that stopped mid-call, counted from the SFU's release: when the restart was
  slower (in Chromium after UDP came back the first frame came 0.5 s after the release,
  then paused 2.2 s on a loaded machine, over 5 s in full runs) the participant dipped
  to audio a second time and climbed again, and everyone saw their video flap. For
  `video_resume_seconds` (`RESUME_SILENCES` silences) from the climb, no video alone
  therefore steps nobody down; once that has passed with no frame in the last
  `media_silence_seconds`, they step down to audio once, as before. Audio and video
  silent together still step down to text at once: that is the network, not a restart.
- While someone is below video (stepped down, or by their own choice), the SFU stops
  forwarding their video (`Sfu.hold_video`, on the `media_mode` room event); the web
  client stops sending it. After a network step down (`NETWORK_REASONS`: loss,
  silence, a dead connection) clean audio is then the evidence that video would fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from server.config import Settings
from server.rooms.model import LADDER, MediaMode

LOSSY_SAMPLES = 2  # consecutive samples over the threshold before loss steps down
# Back on video this long, the climb held; stepped down for the network sooner, it failed.
CLIMB_TRIAL_SECONDS = 20.0
MAX_RECOVER_SECONDS = 40.0  # the longest wait for clean media after failed climbs
MAX_FAILED_CLIMBS = 8  # counted no further (the wait is long capped by then)
RESUME_SILENCES = 2  # back on video: no video alone steps down after this many silences

# Steps the network caused: while stepped down for one of these the client sends no
# video, so clean audio is the evidence that video would fit again. A dead connection
# counts: the client rebuilds it and, until it is stepped back up, sends audio only.
NETWORK_REASONS = frozenset(
    {
        "high_loss",
        "no_rtp",
        "ice_failed",
        "ice_timeout",
        "dtls_failed",
        "connection_closed",
        "consent_expired",
        "renegotiation_timeout",
        "renegotiation_failed",
    }
)

# Steps down that undo a climb to video: the network's, and video that stopped arriving
# once the resume time was over (a capped link can pass audio and no whole video frame).
CLIMB_UNDONE = NETWORK_REASONS | {"no_video_rtp"}


@dataclass(frozen=True)
class LadderState:
    """What the rules remember about one participant between ticks."""

    ceiling: MediaMode | None = None  # the mode before the monitor stepped down
    last_set: MediaMode | None = None  # the mode the monitor set last
    healthy_since: float | None = None
    network: bool = False  # stepped down for the network: clean audio vouches for video
    held: bool = False  # at the last tick: below video, their video held by the SFU
    video_back_at: float | None = None  # when they last came back up to video from held
    failed_climbs: int = 0  # climbs to video the network undid, in a row


@dataclass(frozen=True)
class Feed:
    """One published track as the SFU receives it (times are monotonic seconds)."""

    paused: bool = False  # muted or camera off: no frames are expected
    last_frame_at: float | None = None
    expected_since: float = 0.0  # attached or unpaused: frames should come from here on
    held: bool = False  # not forwarded while the participant is below video


@dataclass(frozen=True)
class Observation:
    """One participant's connection at one tick."""

    mode: MediaMode  # the participant's media mode now
    created_at: float
    connected_at: float | None = None  # None until ICE and DTLS first completed
    dead: str | None = None  # why the connection can no longer carry media (Peer.dead_reason)
    connected: bool = False  # its state is `connected` (not still connecting, not dead)
    sends_audio: bool = True  # the participant's own controls: microphone on
    sends_video: bool = True  # camera on
    audio: Feed | None = None  # what they publish, if anything
    video: Feed | None = None
    quiet: float = 0.0  # seconds since the far end was last heard from (Liveness)
    loss_percent: float = 0.0  # inbound loss in the latest stats sample
    lossy_samples: int = 0  # consecutive samples at or above the step-down threshold


@dataclass(frozen=True)
class Fail:
    """Close the connection as dead for `reason` (text; the client rebuilds it)."""

    reason: str


@dataclass(frozen=True)
class Step:
    """Move the participant to `mode` for `reason` (`down` the ladder, or back up)."""

    mode: MediaMode
    reason: str
    down: bool


@dataclass(frozen=True)
class Decision:
    state: LadderState
    action: Fail | Step | None = None


BELOW_VIDEO = frozenset({MediaMode.AUDIO, MediaMode.TEXT})  # the rungs where video is held


def _worse(a: MediaMode, b: MediaMode) -> MediaMode:
    return a if LADDER.index(a) >= LADDER.index(b) else b


@dataclass(frozen=True)
class LadderRules:
    ice_timeout_seconds: float
    silence_seconds: float
    liveness_seconds: float
    loss_step_down_percent: float
    recover_seconds: float
    video_resume_seconds: float  # back on video: how long no video alone is not a failure

    @classmethod
    def from_settings(cls, settings: Settings) -> LadderRules:
        return cls(
            ice_timeout_seconds=settings.media_ice_timeout_seconds,
            silence_seconds=settings.media_silence_seconds,
            liveness_seconds=settings.media_liveness_seconds,
            loss_step_down_percent=settings.media_loss_step_down_percent,
            recover_seconds=settings.media_recover_seconds,
            video_resume_seconds=RESUME_SILENCES * settings.media_silence_seconds,
        )

    @property
    def fresh_seconds(self) -> float:
        """How recent a frame must be to count as media flowing now."""
        return min(1.0, self.silence_seconds / 2)

    def decide(self, state: LadderState, seen: Observation, now: float) -> Decision:
        """The rules above, for one participant at `now`: the state to keep and what to do."""
        if state.last_set is not None and seen.mode != state.last_set:
            state = replace(state, ceiling=None, last_set=None, network=False)  # its own choice
        if seen.mode == MediaMode.VIDEO and state.held:  # climbed back to video by themselves
            state = replace(state, video_back_at=now)
        state = replace(
            state,
            held=seen.mode in BELOW_VIDEO and seen.video is not None and seen.video.held,
        )
        if state.failed_climbs and seen.mode == MediaMode.VIDEO and self._climb_held(state, now):
            state = replace(state, failed_climbs=0)
        if seen.dead is not None:  # missed its state change event: the same path as that event
            return Decision(state, Fail(seen.dead))
        if seen.connected_at is None:
            if now - seen.created_at >= self.ice_timeout_seconds:
                return Decision(state, Fail("ice_timeout"))
            return Decision(state)
        if not seen.connected:
            return Decision(state)
        audio, video, mode = seen.audio, seen.video, seen.mode
        # The mode to judge by: while stepped down, the one the participant had.
        wanted = state.ceiling or mode
        covered = (wanted == MediaMode.VIDEO and seen.sends_video) or (
            wanted == MediaMode.AUDIO and seen.sends_audio
        )  # by the silence rules below
        if not covered and seen.quiet >= self.liveness_seconds:
            return Decision(state, Fail("consent_expired"))
        lossy = seen.lossy_samples >= LOSSY_SAMPLES
        clean = seen.loss_percent < self.loss_step_down_percent
        down: Step | None = None
        video_silent = (
            mode == MediaMode.VIDEO and seen.sends_video and self._silent(video, seen, now)
        )
        # The network stops audio and video together, but audio's last packet can come a
        # frame interval after video's: half the silence is enough to call it one loss.
        if video_silent and seen.sends_audio and self._silent(audio, seen, now, share=0.5):
            down = Step(MediaMode.TEXT, "no_rtp", down=True)
        elif video_silent:
            if not self._resuming(state, now):  # else back on video a moment ago: wait
                down = Step(MediaMode.AUDIO, "no_video_rtp", down=True)
        elif mode == MediaMode.VIDEO and lossy:
            down = Step(MediaMode.AUDIO, "high_loss", down=True)
        elif mode == MediaMode.AUDIO and seen.sends_audio and self._silent(audio, seen, now):
            down = Step(MediaMode.TEXT, "no_audio_rtp", down=True)
        if down is not None:
            return Decision(state, down)
        if state.ceiling is None:
            return Decision(state)
        video_fits = self._fresh(video, now) or (
            state.network and video is not None and video.held and self._fresh(audio, now)
        )
        if not covered and clean:
            best = MediaMode.VIDEO  # heard from (or closed above): no frames to judge by
        elif video_fits and clean:
            best = MediaMode.VIDEO
        elif self._fresh(audio, now) or self._fresh(video, now):
            best = MediaMode.AUDIO
        else:
            best = MediaMode.TEXT
        best = _worse(best, state.ceiling)
        if mode not in LADDER or LADDER.index(best) >= LADDER.index(mode):
            return Decision(replace(state, healthy_since=None))
        if state.healthy_since is None:
            return Decision(replace(state, healthy_since=now))
        if now - state.healthy_since >= self.recover_wait(state):
            return Decision(state, Step(best, "media_recovered", down=False))
        return Decision(state)

    def recover_wait(self, state: LadderState) -> float:
        """How long media must flow cleanly before a step back up: `recover_seconds`,
        doubled for each failed climb in a row (at most `MAX_RECOVER_SECONDS`)."""
        if not state.failed_climbs:
            return self.recover_seconds
        longest = max(MAX_RECOVER_SECONDS, self.recover_seconds)
        return min(self.recover_seconds * 2**state.failed_climbs, longest)

    @staticmethod
    def _climb_held(state: LadderState, now: float) -> bool:
        back = state.video_back_at
        return back is not None and now - back >= CLIMB_TRIAL_SECONDS

    def _silent(self, feed: Feed | None, seen: Observation, now: float, share: float = 1.0) -> bool:
        started = seen.connected_at or now
        silence = self.silence_seconds * share
        if feed is None:
            return now - started >= silence
        if feed.paused:
            return False
        last = max(feed.last_frame_at or 0.0, feed.expected_since, started)
        return now - last >= silence

    def _resuming(self, state: LadderState, now: float) -> bool:
        """Back on video from held video less than `video_resume_seconds` ago."""
        back = state.video_back_at
        return back is not None and now - back < self.video_resume_seconds

    def _fresh(self, feed: Feed | None, now: float) -> bool:
        return (
            feed is not None
            and not feed.paused
            and feed.last_frame_at is not None
            and now - feed.last_frame_at < self.fresh_seconds
        )


def after_step(
    state: LadderState, current: MediaMode, mode: MediaMode, reason: str, down: bool, now: float
) -> LadderState | None:
    """The state after the monitor moves a participant from `current` to `mode` at `now`,
    or None when it does not move them: someone off the ladder (on the phone) is left
    alone, and a step down never goes up. Back up at the mode they had, the step down is
    over. Back up to video, their video resumes from `now` (`video_resume_seconds`).
    Down from video (`CLIMB_UNDONE`) within `CLIMB_TRIAL_SECONDS` of coming back to it,
    that climb failed (`failed_climbs`)."""
    if current not in LADDER:
        return None
    if down and LADDER.index(mode) <= LADDER.index(current):
        return None
    back_at = now if not down and mode == MediaMode.VIDEO else state.video_back_at
    failed = state.failed_climbs
    if (
        down
        and current == MediaMode.VIDEO
        and reason in CLIMB_UNDONE
        and state.video_back_at is not None
        and now - state.video_back_at < CLIMB_TRIAL_SECONDS
    ):
        failed = min(failed + 1, MAX_FAILED_CLIMBS)
    if not down and mode == state.ceiling:
        return LadderState(video_back_at=back_at, failed_climbs=failed)
    return LadderState(
        ceiling=current if down and state.ceiling is None else state.ceiling,
        last_set=mode,
        network=state.network or reason in NETWORK_REASONS,
        video_back_at=back_at,
        failed_climbs=failed,
    )
