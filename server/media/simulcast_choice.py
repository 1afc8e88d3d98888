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
overuse; so a *rising* estimate is no limit, and a steady or falling one is:
- never above the view: the smallest layer at least as tall as the tile (a hidden
  tile, height 0, gets the lowest);
- start at the lowest layer (small keyframe, first picture soonest), or the highest
  the first estimate carries;
- down at once when loss reaches 10 %, or the estimate is not rising and no longer
  carries the current layer (below 90 % of its rate): to the highest layer that
  fits, at least one step;
- up one layer when loss is under 2 %, the last change is `hold` seconds old, and
  either the estimate is still rising or it carries the next layer with 20 % to
  spare; a climb that has
  to come back down within twice the hold doubles it (up to 30 s), so a link at its
  limit is not tried every 2 s.
Without probing (padding to raise the estimate), a subscriber whose estimate has
settled at its cap below the next layer stays where it is.

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
        return _set(choice, start, now)
    rate = layers[current].bitrate
    congested = loss >= LOSS_DOWN or (
        not rising and estimate is not None and rate > 0 and estimate < rate * CONGESTED_BELOW
    )
    if current > top:
        return _set(choice, max(i for i in active if i <= top), now)
    if congested and current > min(active):
        fits = [
            i
            for i in active
            if i < current and (estimate is None or layers[i].bitrate <= estimate * CONGESTED_BELOW)
        ]
        if now - choice.went_up_at < 2 * choice.hold:
            choice.hold = min(choice.hold * 2, MAX_HOLD_SECONDS)
        return _set(choice, max(fits) if fits else min(active), now)
    higher = [i for i in active if current < i <= top]
    can_climb = (
        bool(higher)
        and not congested
        and loss < LOSS_UP
        and estimate is not None
        and (rising or 0 < layers[min(higher)].bitrate * HEADROOM_UP <= estimate)
        and now - choice.changed_at >= choice.hold
    )
    if can_climb:
        choice.went_up_at = now
        return _set(choice, min(higher), now)
    return current


def _set(choice: Choice, target: int, now: float) -> int:
    if target != choice.target:
        choice.target = target
        choice.changed_at = now
    return target
