"""Which simulcast layer one subscriber gets: a pure function of what is known now.

Inputs, per forwarded track:
- the layers as received (bit rate over the last second, height from the layer's
  keyframes: VP8's frame header, VP9's scalability structure, AV1's sequence header;
  whether frames are coming);
- the subscriber's bandwidth for this track: its latest REMB (the browser's
  receive-side estimate for the whole connection) less what the SFU sends it on its
  other tracks; None until the first REMB;
- its loss on this track (the `fraction lost` of its receiver reports);
- the size it shows the tile at (`media_view`, in device pixels), if it said.

Rules (LiveKit's and mediasoup's shape, with REMB instead of transport-cc, which aiortc
does not have). A receive-side estimate (REMB) ramps up by a few percent a second
while the link takes more, is capped near 1.5x what it receives, and drops on
overuse; so a *rising* estimate is a limit only as far as its ramp reaches, and a
steady or falling one is:
- never above the view: the smallest layer at least as tall as the tile (a hidden
  tile, height 0, gets the lowest);
- start at the lowest layer (small keyframe, first picture soonest), or the highest
  the first estimate carries;
- down at once when loss reaches 10 %, or the estimate is not rising and no longer
  carries the current layer (below 90 % of its rate): to the highest layer that
  fits, at least one step; the current layer stops at once (`Choice.stepping_down`)
  rather than keep filling a link whose queue the new layer's keyframe must cross;
- up one layer when loss is under 2 %, the last change is `hold` seconds old, and
  either the estimate carries the next layer with 20 % to spare, or it is still
  rising and within reach of that (`RAMP_REACH`: a full link's estimate, back from a
  dip, rises too: a CI run climbed from layers of 150 / 370 kbit/s on an estimate
  rising 124 -> 127 kbit/s, into a 300 kbit/s cap); a climb that has
  to come back down within twice the hold doubles it (up to 30 s), so a link at its
  limit is not tried every 2 s;
- probe where the climb waits on the estimate alone: a receive-side estimate settles
  near 1.5x what arrives, so on a settled link it never shows the room for the next
  layer. When everything but the estimate allows a climb, the subscriber's track gets
  padding (`Choice.padding`, sent by forwarding.py) for at most `PROBE_SECONDS`: enough
  that it receives the next layer's rate with the climb's headroom. If the link takes
  it, the estimate rises and the rule above climbs, once it is 5 % above where the probe
  found it (a capped link lets it rise a little before its queue shows; a rising
  estimate alone climbed into the cap and failed), and the hold goes back to 2 s. A
  probe that meets loss or a falling estimate stops at once and counts as a failed
  climb (the hold doubles, and the next probe waits for it); one that ends without a
  rise waits a hold before the next;
- a climb that held for twice the hold puts the hold back to 2 s, and so does an
  estimate 20 % above the highest it settled at (from 2 s after the step down) since a
  failed climb: a cap lifted. Under a cap a receive-side estimate sits at its 1.5x
  limit, and a dip comes back to it, not above; once the cap goes it ramps past it
  within seconds. After a failed probe the hold runs its course (the estimate can
  settle higher than before the probe, and would end it at once).

The switch itself happens on the target layer's next keyframe (forwarding.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEADROOM_UP = 1.2
CONGESTED_BELOW = 0.9
LOSS_DOWN = 0.10
LOSS_UP = 0.02
HOLD_SECONDS = 2.0
# An estimate ramps up to ~8 % a second, far less near the capacity it last found
# (libwebrtc's AIMD adds about a packet per round trip there): long enough to show it.
PROBE_SECONDS = 4.0
# A rising estimate is trusted for a climb only to what its ramp reaches soon: at most
# ~1.5x itself (what a receive-side estimate allows above what arrives).
RAMP_REACH = 1.5
# While probing, a climb needs the estimate 5 % above where the probe found it (under a
# cap it stays within ~3 % until the probe's queue shows), and one 5 % below ends it.
PROBE_RISE = 1.05
PROBE_FALL = 0.95
RECOVERED = 1.2  # an estimate this far above where it settled after a failed climb
MAX_HOLD_SECONDS = 30.0
VIEW_SLACK = 0.9  # a layer 10 % shorter than the tile is still sharp enough


@dataclass(frozen=True)
class LayerState:
    bitrate: float  # bit/s
    height: int  # 0 while unknown
    active: bool


class Estimate:
    """A subscriber's REMB over the last few seconds: its value and its trend."""

    WINDOW = 3.0
    # A browser sends a REMB every 0.2-1 s. Closer ones replace the newest entry rather
    # than add one (a REMB naming several video tracks, or a flood): each observation
    # scans the history, and a flood of 5,000 a second kept 15,000 entries and cost 32 s
    # of CPU a second (1,000 a second: 0.4 s).
    FOLD = 0.05

    def __init__(self) -> None:
        self.history: list[tuple[float, float]] = []

    def observe(self, bitrate: float, now: float) -> None:
        if self.history and now - self.history[-1][0] < self.FOLD:
            self.history[-1] = (self.history[-1][0], bitrate)
            return
        self.history = [(t, v) for t, v in self.history if now - t <= self.WINDOW]
        self.history.append((now, bitrate))

    @property
    def value(self) -> float | None:
        return self.history[-1][1] if self.history else None

    @property
    def at(self) -> float:
        """When the latest estimate came (-inf before the first)."""
        return self.history[-1][0] if self.history else -math.inf

    @property
    def rising(self) -> bool:
        """Higher than a second or more ago (the estimator is still ramping)."""
        now, value = self.history[-1] if self.history else (0.0, 0.0)
        older = [v for t, v in self.history if now - t >= 0.8]
        return bool(older) and value > older[-1] * 1.02


@dataclass
class Choice:
    """One subscriber track's layer decision, kept between observations."""

    target: int | None = None
    changed_at: float = -math.inf
    hold: float = HOLD_SECONDS
    went_up_at: float = -math.inf
    congested_at: float = -math.inf  # when the last step down for congestion was chosen
    probe_rate: float = 0.0  # bit/s of padding wanted while probing, else 0
    probe_started: float = -math.inf
    probe_floor: float = 0.0  # the estimate when the probe started
    # After a failed climb stepped down: from when its estimate counts as settled, and
    # the highest it has been since then.
    recovery_from: float = math.inf
    settled_at: float = 0.0

    @property
    def stepping_down(self) -> bool:
        """The latest change is a step down for congestion: the layer being sent no
        longer fits the link, so it should stop at once (forwarding.py), not fill the
        queue the lower layer's keyframe has to get through."""
        return self.changed_at == self.congested_at

    def padding(self, now: float) -> float:
        """The padding (bit/s) this track should get now: a probe's rate until it ends
        (its last observation may be a second old)."""
        if self.probe_rate and now - self.probe_started < PROBE_SECONDS:
            return self.probe_rate
        return 0.0


def ceiling(layers: list[LayerState], view_height: int | None) -> int | None:
    """The highest layer worth sending to a tile `view_height` pixels tall."""
    active = [i for i, layer in enumerate(layers) if layer.active]
    if not active:
        return None
    if view_height is None:
        return max(active)
    if view_height <= 0:
        return min(active)
    tall_enough = [
        i for i in active if layers[i].height and layers[i].height >= view_height * VIEW_SLACK
    ]
    return min(tall_enough) if tall_enough else max(active)


def choose(
    choice: Choice,
    layers: list[LayerState],
    estimate: float | None,
    loss: float,
    view_height: int | None,
    now: float,
    rising: bool = False,
) -> int:
    """The layer this subscriber should get now (updates `choice`)."""
    top = ceiling(layers, view_height)
    active = [i for i, layer in enumerate(layers) if layer.active]
    if top is None:  # nothing is coming: keep what was chosen
        return choice.target if choice.target is not None else 0
    current = choice.target
    if current is None or current not in active:
        fitting = [
            i
            for i in active
            if i <= top and estimate is not None and 0 < layers[i].bitrate * HEADROOM_UP <= estimate
        ]
        below = [i for i in active if current is not None and i < current and i <= top]
        start = max(fitting) if fitting else (max(below) if below else min(active))
        _end_probe(choice, now, failed=False)
        return _set(choice, start, now)
    if math.isfinite(choice.went_up_at) and now - choice.went_up_at >= 2 * choice.hold:
        # the last climb held: a clear link
        choice.hold, choice.went_up_at = HOLD_SECONDS, -math.inf
    if estimate is not None and now >= choice.recovery_from:
        if choice.settled_at and estimate >= choice.settled_at * RECOVERED:
            # the link changed since the failed climb: its hold ends
            choice.hold, choice.recovery_from = HOLD_SECONDS, math.inf
        choice.settled_at = max(choice.settled_at, estimate)
    rate = layers[current].bitrate
    congested = loss >= LOSS_DOWN or (
        not rising and estimate is not None and rate > 0 and estimate < rate * CONGESTED_BELOW
    )
    if current > top:
        _end_probe(choice, now, failed=False)
        return _set(choice, max(i for i in active if i <= top), now)
    if congested and current > min(active):
        fits = [
            i
            for i in active
            if i < current and (estimate is None or layers[i].bitrate <= estimate * CONGESTED_BELOW)
        ]
        probing = bool(choice.probe_rate)
        _end_probe(choice, now, failed=False)
        if probing or now - choice.went_up_at < 2 * choice.hold:
            choice.hold = min(choice.hold * 2, MAX_HOLD_SECONDS)
            choice.recovery_from, choice.settled_at = now + HOLD_SECONDS, 0.0
        target = _set(choice, max(fits) if fits else min(active), now)
        choice.congested_at = choice.changed_at
        return target
    if congested or loss >= LOSS_UP:
        _end_probe(choice, now, failed=True)  # the link did not take it
    higher = [i for i in active if current < i <= top]
    may_climb = (
        bool(higher)
        and not congested
        and loss < LOSS_UP
        and estimate is not None
        and now - choice.changed_at >= choice.hold
    )
    if not may_climb:
        _end_probe(choice, now, failed=False)
        return current
    assert estimate is not None
    wanted = layers[min(higher)].bitrate * HEADROOM_UP
    carries = 0 < wanted <= estimate
    if choice.probe_rate:
        if estimate < choice.probe_floor * PROBE_FALL:
            _end_probe(choice, now, failed=True)  # overuse: the link is full
            return current
        if carries or (rising and estimate >= choice.probe_floor * PROBE_RISE):
            choice.hold = HOLD_SECONDS  # the link showed room: earlier failures are past
            return _climb(choice, min(higher), now)
        if now - choice.probe_started >= PROBE_SECONDS:
            # the estimate did not move: try again after a hold, not a longer one (an
            # estimate near the capacity it last found creeps up ~2 % a second)
            _end_probe(choice, now, failed=False)
            choice.changed_at = now
            return current
    elif carries or (rising and estimate * RAMP_REACH >= wanted):
        return _climb(choice, min(higher), now)
    else:
        choice.probe_started, choice.probe_floor = now, estimate
    choice.probe_rate = max(1.0, wanted - rate)
    return current


def _climb(choice: Choice, target: int, now: float) -> int:
    _end_probe(choice, now, failed=False)
    choice.went_up_at, choice.recovery_from = now, math.inf
    return _set(choice, target, now)


def _end_probe(choice: Choice, now: float, failed: bool) -> None:
    """Stop a probe; one that failed counts as a failed climb (simulcast rules above)."""
    if not choice.probe_rate:
        return
    choice.probe_rate = 0.0
    choice.probe_started = -math.inf
    if failed:
        choice.hold = min(choice.hold * 2, MAX_HOLD_SECONDS)
        # After a probe the estimate can settle higher than before it (what arrived
        # during it counts): no early end to this hold.
        choice.recovery_from = math.inf
        choice.changed_at = now  # the next probe (or climb) waits a whole hold


def _set(choice: Choice, target: int, now: float) -> int:
    if target != choice.target:
        choice.target = target
        choice.changed_at = now
    return target
