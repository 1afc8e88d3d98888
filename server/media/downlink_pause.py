"""When a subscriber's link cannot carry even the smallest video the SFU has for it: a
video track paused to that subscriber alone, so that its audio and the rest get through,
and tried again later.

Layer choice (simulcast_choice.py) and the publisher cap (publisher_cap.py) make each
video as small as it goes. A link that loses even then (two cameras' lowest layers and
two voices, ~430 kbit/s, on a 300 kbit/s link: a quarter to three quarters of the video
lost, and the audio with it) is better served by fewer tracks: LiveKit's stream
allocator pauses a subscriber's tracks when its estimate is below their lowest layers,
mediasoup's consumer priorities leave the least wanted without a layer. Rules, per
subscriber, a pure function of what it is given (the SFU calls `update` on each of the
subscriber's REMBs and loss readings, and when a hold ends):

- a video track is *at its floor* when nothing smaller can be sent: a simulcast track
  on its lowest layer, a single-layer one whose publisher is asked for the cap's floor;
- a track that carries nothing (a camera turned off) is left out of what follows;
- the subscriber is *congested* on it when it loses `LOSS_DOWN` or more of it while its
  estimate, not rising, is under `FULL` times what the SFU sends it on all its video: a
  full link. Random loss (Wi-Fi) leaves a receive-side estimate near 1.5x what arrives,
  and pausing would not help it, so loss alone pauses nothing;
- congested on a track at its floor for `PAUSE_AFTER` seconds: one track is paused, the
  least wanted (a camera before a screen share, then the smallest tile as `media_view`
  says, then the later publisher in name order), and the readings start over (another
  `PAUSE_AFTER` before the next one);
- a paused track is tried again after its hold: `HOLD_SECONDS`, doubled (up to
  `MAX_HOLD_SECONDS`) each time it must be paused again within twice its hold of coming
  back; back for twice its hold, it starts from `HOLD_SECONDS` again. A receive-side
  estimate cannot show room for a track that is not sent (it settles near 1.5x what
  arrives), so the way back is a trial, as a layer climb is; a failed one costs the link
  `PAUSE_AFTER` seconds of loss.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from server.media.simulcast_choice import LOSS_DOWN

FULL = 1.1
PAUSE_AFTER = 3.0
HOLD_SECONDS = 8.0
MAX_HOLD_SECONDS = 64.0


@dataclass(frozen=True)
class Video:
    """One video track the subscriber gets (or would get, paused), as it is now."""

    key: Hashable
    at_floor: bool
    loss: float  # the subscriber's reported loss on it (reported_loss.py)
    rate: float  # bit/s the SFU sends on it now
    screen: bool = False
    area: int | None = None  # the tile's size in device pixels (media_view), if said
    publisher: str = ""


@dataclass(frozen=True)
class Changes:
    pause: list[Hashable] = field(default_factory=list)
    resume: list[Hashable] = field(default_factory=list)


@dataclass
class _Paused:
    since: float
    hold: float


class DownlinkPause:
    """One subscriber's paused video tracks and the readings that pause them."""

    def __init__(self) -> None:
        self.paused: dict[Hashable, _Paused] = {}
        self._congested_since: float | None = None
        self._holds: dict[Hashable, float] = {}  # the hold a track's next pause gets
        self._back_at: dict[Hashable, float] = {}  # when a paused track was resumed

    def update(
        self, videos: Iterable[Video], estimate: float | None, rising: bool, now: float
    ) -> Changes:
        """What to pause or resume now. `videos` are the subscriber's video tracks,
        paused ones included; a key missing from them is forgotten."""
        videos = list(videos)
        keys = {video.key for video in videos}
        for gone in [key for key in self.paused if key not in keys]:
            del self.paused[gone]
        for table in (self._holds, self._back_at):
            for gone in [key for key in table if key not in keys]:
                del table[gone]
        resume = [key for key, paused in self.paused.items() if now >= paused.since + paused.hold]
        for key in resume:
            del self.paused[key]
            self._back_at[key] = now
        for key, back in list(self._back_at.items()):
            if now - back >= 2 * self._holds.get(key, HOLD_SECONDS):
                del self._back_at[key]  # it held: a clear link
                self._holds.pop(key, None)
        if resume:
            self._congested_since = None  # what it sends changed: read afresh
            return Changes(resume=resume)
        # What carries nothing (a camera turned off, a layer-less moment) neither loses
        # nor can be made smaller: it must not hold back a pause of the others.
        sent = [video for video in videos if video.key not in self.paused and video.rate > 0]
        total = sum(video.rate for video in sent)
        full = not rising and estimate is not None and total > 0 and estimate < total * FULL
        congested = full and any(v.at_floor and v.loss >= LOSS_DOWN for v in sent)
        if not congested or not all(video.at_floor for video in sent):
            self._congested_since = None
            return Changes()
        if self._congested_since is None:
            self._congested_since = now
        if now - self._congested_since < PAUSE_AFTER:
            return Changes()
        later_first = sorted(sent, key=lambda video: video.publisher, reverse=True)
        victim = min(later_first, key=_wanted)  # min keeps the first of equals
        hold = self._holds.get(victim.key, HOLD_SECONDS)
        if victim.key in self._back_at:  # back less than twice its hold ago: failed
            hold = min(2 * hold, MAX_HOLD_SECONDS)
            del self._back_at[victim.key]
        self._holds[victim.key] = hold
        self.paused[victim.key] = _Paused(now, hold)
        self._congested_since = None
        return Changes(pause=[victim.key])

    def next_resume(self) -> float | None:
        """When the earliest paused track is tried again (None: none is paused)."""
        times = [paused.since + paused.hold for paused in self.paused.values()]
        return min(times) if times else None


def _wanted(video: Video) -> tuple[bool, float]:
    """Sorts the least wanted first: cameras, then small tiles."""
    return (video.screen, video.area if video.area is not None else math.inf)
