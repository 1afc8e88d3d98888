"""The ladder monitor: from real counters to the fallback ladder.

Every tick it observes each participant's connection (stats_sampler.observe), asks the
ladder rules (ladder_rules.py, where the rules are written down) what to do, and does it:
closes a dead connection through the SFU, or moves the participant down or back up the
ladder in the room registry. Every `SAMPLE_SECONDS` it has the stats sampler read each
connection's stats, which the loss rule judges by.

It sees the SFU through `MediaRooms`, the little it needs of it, so the SFU can own it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Protocol

from server.config import Settings
from server.media.ladder_rules import Fail, LadderRules, LadderState, Step, after_step
from server.media.metrics import MediaMetrics
from server.media.peer import Peer
from server.media.stats_sampler import SAMPLE_SECONDS, SendControls, StatsSampler, observe
from server.rooms.events import EventBus
from server.rooms.model import LADDER, MediaMode
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.media.health")


class RoomConnections(Protocol):
    """One room's media as the monitor sees it (the SFU's `RoomMedia`)."""

    @property
    def name(self) -> str: ...

    @property
    def peers(self) -> Mapping[str, Peer]: ...

    @property
    def controls(self) -> Mapping[str, SendControls]: ...


class MediaRooms(Protocol):
    """What the monitor needs of the SFU: its rooms, and a way to close a dead connection."""

    @property
    def rooms(self) -> Mapping[str, RoomConnections]: ...

    def fail_soon(self, peer: Peer, reason: str) -> None:
        """Close `peer` as dead for `reason` (text, `media_failed`), in the background."""


class LadderMonitor:
    def __init__(
        self,
        sfu: MediaRooms,
        settings: Settings,
        registry: RoomRegistry,
        bus: EventBus,
        metrics: MediaMetrics,
    ) -> None:
        self._sfu = sfu
        self._rules = LadderRules.from_settings(settings)
        self._sampler = StatsSampler(settings.media_loss_step_down_percent, bus, metrics)
        self._registry = registry
        self._metrics = metrics
        self._states: dict[tuple[str, str], LadderState] = {}
        # After a `restore`: what the ladder knew before, once they are back at the rung.
        self._resume: dict[tuple[str, str], LadderState] = {}
        self._task: asyncio.Task[None] | None = None
        self.tick_seconds = min(0.5, settings.media_silence_seconds / 4)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def connection_lost(self, room: str, identity: str, reason: str) -> None:
        """The participant's PeerConnection is gone: no media at all until a reconnect."""
        self._step(room, identity, Step(MediaMode.TEXT, reason, down=True), time.monotonic())

    def state(self, room: str, identity: str) -> LadderState:
        """What the rules remember about the participant now."""
        return self._states.get((room, identity), LadderState())

    def restore(self, room: str, identity: str, rung: MediaMode, memory: LadderState) -> None:
        """The participant's media was lost with the SFU that held it (a media worker died)
        while they were on `rung`, and `memory` is what its ladder knew: back up to `rung`
        once media flows cleanly (as after a dead connection: clean audio vouches for
        video), then on from `memory`. The restart alone never lifts them above `rung`."""
        key = (room, identity)
        if rung not in LADDER or rung == MediaMode.TEXT:
            self._states[key] = memory
            return
        self._states[key] = LadderState(ceiling=rung, last_set=MediaMode.TEXT, network=True)
        self._resume[key] = memory

    async def _run(self) -> None:
        next_sample = time.monotonic() + SAMPLE_SECONDS
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                now = time.monotonic()
                self.check(now)
                if now >= next_sample:
                    next_sample = now + SAMPLE_SECONDS
                    await self.sample(now)
            except Exception:
                log.exception("media health check failed")

    def check(self, now: float) -> None:
        """Judge every connection as of `now` (monotonic seconds)."""
        for media in list(self._sfu.rooms.values()):
            for peer in list(media.peers.values()):
                self._judge(media, peer, now)
        live = {(r.name, who) for r in self._sfu.rooms.values() for who in r.peers}
        for key in list(self._states):
            if key not in live and self._registry.participant(*key) is None:
                del self._states[key]
                self._resume.pop(key, None)

    async def sample(self, now: float) -> None:
        await self._sampler.sample(self._peers(), now)

    def _peers(self) -> Iterator[Peer]:
        for media in list(self._sfu.rooms.values()):
            yield from list(media.peers.values())

    def _judge(self, media: RoomConnections, peer: Peer, now: float) -> None:
        participant = self._registry.participant(peer.room, peer.identity)
        if participant is None or peer.closed:
            return
        key = (peer.room, peer.identity)
        seen = observe(peer, media.controls.get(peer.identity), participant.media_mode, now)
        decision = self._rules.decide(self._states.get(key, LadderState()), seen, now)
        self._states[key] = decision.state
        if decision.state.ceiling is None:  # their own choice ended any restore
            self._resume.pop(key, None)
        if isinstance(decision.action, Fail):
            self._sfu.fail_soon(peer, decision.action.reason)
        elif isinstance(decision.action, Step):
            self._step(peer.room, peer.identity, decision.action, now)

    def _step(self, room: str, identity: str, step: Step, now: float) -> None:
        participant = self._registry.participant(room, identity)
        if participant is None:
            return
        key = (room, identity)
        state = after_step(
            self._states.get(key, LadderState()),
            participant.media_mode,
            step.mode,
            step.reason,
            step.down,
            now,
        )
        if state is None:
            return
        then = self._resume.get(key)
        if not step.down and state.ceiling is None and then is not None:
            del self._resume[key]  # back at the restored rung: on from what was known
            if then.ceiling is not None and then.last_set == step.mode:
                state = replace(then, healthy_since=None, video_back_at=state.video_back_at)
        self._states[key] = state
        self._registry.set_media_mode(room, identity, step.mode, step.reason)
        self._metrics.mode_changes.labels(step.reason).inc()
        log.info(
            "media mode changed",
            extra={
                "room": room,
                "identity": identity,
                "mode": str(step.mode),
                "reason": step.reason,
            },
        )
