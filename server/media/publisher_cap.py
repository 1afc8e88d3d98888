"""How much a single-layer video publisher is asked to send: what its subscribers can take.

A publisher that does not simulcast has one layer, so a subscriber on a slow link
cannot be given a smaller one (simulcast_choice.py). The SFU then asks the publisher
itself for less, with a REMB upstream, which Chrome obeys as a ceiling whether or not
transport-cc is negotiated (libwebrtc's `SendSideBandwidthEstimation::UpdateReceiverEstimate`:
its target is the least of the last REMB and its own estimates; the SFU negotiates
transport-cc with publishers, aiortc_internals/negotiation.py). aiortc never negotiates
`ccm tmmbr`, so TMMBR is never an option here:

- the cap is the least any subscriber of the track can take, never under `FLOOR`
  (below it a camera picture is not worth its bits: the subscriber is better served
  by the fallback ladder's audio rung than by a smaller trickle of video);
- a subscriber's take is its REMB less what the SFU sends it on its other video
  tracks (its *budget*); with loss at or over `LOSS_DOWN` on this track, also what
  the publisher sends now times (1 - loss / 2), GCC's loss-based decrease (a REMB
  says nothing of loss);
- uncapped, a subscriber starts the cap only when it is congested: loss at or over
  `LOSS_DOWN`, or a budget that is not rising and has stayed under `CONGESTED_BELOW` of
  what the publisher sends for `SETTLE_SECONDS` (a receive-side estimate ramps up from
  below at the start, as simulcast_choice.py explains, and a rising one is no limit; a
  browser's first REMB, ~5 s after it starts receiving, is the throughput it measured
  and may dip on the first keyframes: one low report must not cap everyone);
- capped, the cap follows the least budget both ways (loss between `LOSS_UP` and
  `LOSS_DOWN` holds it where it is). A receive-side estimate climbs to ~1.5x what it
  receives while the link takes it, so the cap climbs with it as the link recovers;
- it lifts (no cap: the publisher's own estimate rules again) once every subscriber
  can take `HEADROOM_LIFT` times what the publisher sent before it was capped, with
  loss under `LOSS_UP`;
- a subscriber whose last REMB is older than `STALE_SECONDS` limits nothing (it
  stopped sending them: a closed tab, a disabled receiver).

A simulcast publisher is never capped: a REMB upstream held Chrome near 1.5x its lowest
layer (aiortc_internals/simulcast_receive.py, 12.), and layer choice serves its slow subscribers.

`decide` is a pure function of (state, observations, now); the SFU calls it on each
subscriber REMB or receiver report and sends the result when it changes by more than
`RESEND_CHANGE` (sfu.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from server.media.simulcast_choice import CONGESTED_BELOW, LOSS_DOWN, LOSS_UP

FLOOR = 150_000.0  # bit/s: the least a camera publisher is asked for
HEADROOM_LIFT = 1.2
STALE_SECONDS = 5.0
SETTLE_SECONDS = 2.0  # a low estimate must last this long to start a cap
LOSS_INTERVAL = 1.0  # a loss-based decrease at most once a second (GCC: once an RTT + 300 ms)
RESEND_CHANGE = 0.05  # a cap within 5 % of the one sent is not sent again


@dataclass(frozen=True)
class Take:
    """What the SFU knows of one subscriber of the track now."""

    subscriber: str
    budget: float | None  # bit/s for this track: its REMB less its other video tracks
    budget_at: float  # when that REMB came (monotonic seconds)
    rising: bool  # its REMB is higher than a second ago (still ramping up)
    loss: float  # fraction lost on this track (its receiver reports)


@dataclass
class Cap:
    """One publication's cap, kept between decisions."""

    value: float | None = None  # bit/s asked of the publisher; None: no cap
    demand: float = 0.0  # what the publisher sent while uncapped (bit/s)
    changed_at: float = -math.inf
    low_since: dict[str, float] = field(default_factory=dict)  # uncapped: short since when


def decide(cap: Cap, takes: Iterable[Take], sending: float, now: float) -> float | None:
    """The bit rate to ask of the publisher now, or None for no cap (updates `cap`).
    `sending` is what the publisher sends now (bit/s, 0 while unknown)."""
    fresh = [
        t if t.budget is None or now - t.budget_at <= STALE_SECONDS else replace(t, budget=None)
        for t in takes
    ]
    if cap.value is None:
        if sending > 0:
            cap.demand = sending
        present = {t.subscriber for t in fresh}
        cap.low_since = {k: v for k, v in cap.low_since.items() if k in present}
        found = (_congested_limit(cap, t, sending, now) for t in fresh)
        limits = [x for x in found if x is not None]
        if limits:
            cap.low_since.clear()
        return _set(cap, max(FLOOR, min(limits)) if limits else None, now)
    limits = []
    lift = True
    for take in fresh:
        limit = _capped_limit(take, cap.value, sending, now - cap.changed_at >= LOSS_INTERVAL)
        if limit is not None:
            limits.append(limit)
        fine = take.loss < LOSS_UP and (limit is None or limit >= cap.demand * HEADROOM_LIFT)
        lift = lift and fine
    if lift or not limits:
        return _set(cap, None, now)
    return _set(cap, max(FLOOR, min(limits)), now)


def _congested_limit(cap: Cap, take: Take, sending: float, now: float) -> float | None:
    """What an uncapped publisher should drop to for this subscriber, or None."""
    limits = []
    if take.loss >= LOSS_DOWN and sending > 0:
        limits.append(sending * (1 - take.loss / 2))
    budget = take.budget
    if budget is None or take.rising or sending <= 0 or budget >= sending * CONGESTED_BELOW:
        cap.low_since.pop(take.subscriber, None)
    elif now - cap.low_since.setdefault(take.subscriber, now) >= SETTLE_SECONDS:
        limits.append(budget)
    return min(limits) if limits else None


def _capped_limit(take: Take, value: float, sending: float, may_drop: bool) -> float | None:
    """What this subscriber can take while the publisher is capped at `value`. A loss
    report is seen on every REMB until the next one: it lowers the cap only once in
    `LOSS_INTERVAL` (`may_drop`), or it would compound."""
    budget = take.budget
    if take.loss >= LOSS_DOWN and may_drop:
        base = min(value, sending) if sending > 0 else value
        lossy = base * (1 - take.loss / 2)
        return lossy if budget is None else min(budget, lossy)
    if take.loss >= LOSS_UP:  # holds (and a loss under LOSS_DOWN's interval)
        return value if budget is None else min(budget, value)
    return budget


def worth_sending(new: float | None, sent: float | None) -> bool:
    """Whether a decided cap differs enough from the one last sent to send it."""
    if new is None or sent is None:
        return new != sent
    return abs(new - sent) > sent * RESEND_CHANGE


def _set(cap: Cap, value: float | None, now: float) -> float | None:
    if value != cap.value:
        cap.value = value
        cap.changed_at = now
    return value
