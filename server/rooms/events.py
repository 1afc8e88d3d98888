"""Room events and the in-process bus they travel on.

Every subscriber gets every event of the kinds it takes (all, unless it says), in order,
from its own queue: a slow subscriber (the session log writing to the database) never
delays another (signaling fan-out), and one that fails is logged and keeps receiving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pairwise.events")


@dataclass(frozen=True)
class RoomEvent:
    room: str
    ts: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class SessionStarted(RoomEvent):
    """The first participant joined an empty room."""


@dataclass(frozen=True)
class SessionEnded(RoomEvent):
    """The room stayed empty for the grace period and closed."""

    started_at: float


@dataclass(frozen=True)
class ParticipantJoined(RoomEvent):
    identity: str
    name: str
    role: str
    media_mode: str
    rejoined: bool  # the same identity was already present (a reconnect)


@dataclass(frozen=True)
class ParticipantLeft(RoomEvent):
    identity: str
    reason: str  # left | disconnected | removed | replaced
    # After a dropped connection (`disconnected`): how long the others show the person as
    # "reconnecting" (the room's grace period) before taking their tile away.
    grace_seconds: float = 0.0


@dataclass(frozen=True)
class PresenceChanged(RoomEvent):
    identity: str
    presence: str


@dataclass(frozen=True)
class MediaModeChanged(RoomEvent):
    identity: str
    mode: str
    previous: str
    reason: str
    choice: bool = False  # the participant chose it (not a failure, not the server)


@dataclass(frozen=True)
class ChatPosted(RoomEvent):
    id: int
    identity: str
    name: str
    text: str
    client_id: str
    posted_at: float


@dataclass(frozen=True)
class MediaQualitySampled(RoomEvent):
    """A periodic sample of one participant's media, from the SFU's counters."""

    identity: str
    inbound_kbps: float
    outbound_kbps: float
    loss_percent: float
    rtt_ms: float | None


@dataclass(frozen=True)
class MediaReconnected(RoomEvent):
    identity: str
    reason: str


@dataclass(frozen=True)
class MediaConnectionLost(RoomEvent):
    """The SFU closed a participant's dead PeerConnection (ICE or DTLS failed, the far end
    closed it, consent expired) and told their client to rebuild it. Recorded even when
    the participant's mode does not change (they were already in text)."""

    identity: str
    reason: str


@dataclass(frozen=True)
class MediaControlsChanged(RoomEvent):
    """A participant muted/unmuted or turned the camera off/on: always their own choice."""

    identity: str
    audio: bool
    video: bool


Subscriber = Callable[[RoomEvent], Awaitable[None]]
_Item = tuple[RoomEvent, "asyncio.Future[None] | None"]
Kinds = tuple[type[RoomEvent], ...]


class EventBus:
    """Subscribers marked `paced` slow publishers down: `publish` returns a future that
    completes once they have handled the event. The chat path awaits it, so a sender's
    ack waits for the fan-out and a flood cannot build an unbounded queue behind it."""

    def __init__(self) -> None:
        self._queues: list[tuple[asyncio.Queue[_Item], bool, Kinds | None]] = []
        self._workers: list[asyncio.Task[None]] = []

    def subscribe(
        self,
        subscriber: Subscriber,
        name: str | None = None,
        *,
        paced: bool = False,
        kinds: Kinds | None = None,
    ) -> None:
        """Deliver events to `subscriber`: all of them, or only those of the `kinds` it
        handles (the others then cost it no queue hop and no turn of its worker)."""
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._queues.append((queue, paced, kinds))
        label = name or str(getattr(subscriber, "__qualname__", repr(subscriber)))
        self._workers.append(asyncio.create_task(self._run(queue, subscriber, label)))

    def publish(self, event: RoomEvent) -> asyncio.Future[Any]:
        """Queue `event` for every subscriber that takes it; the result completes when the
        paced ones have handled it (awaiting it is optional)."""
        loop = asyncio.get_running_loop()
        waits = []
        for queue, paced, kinds in self._queues:
            if kinds is not None and not isinstance(event, kinds):
                continue
            handled = loop.create_future() if paced else None
            if handled is not None:
                waits.append(handled)
            queue.put_nowait((event, handled))
        if len(waits) == 1:
            return waits[0]  # as gather would, without its extra turn of the event loop
        return asyncio.gather(*waits)

    async def drain(self) -> None:
        """Wait until every event published so far has been handled."""
        for queue, _, _ in self._queues:
            await queue.join()

    async def close(self) -> None:
        await self.drain()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()

    @staticmethod
    async def _run(queue: asyncio.Queue[_Item], subscriber: Subscriber, label: str) -> None:
        while True:
            event, handled = await queue.get()
            try:
                await subscriber(event)
            except Exception:
                log.exception(
                    "event subscriber failed",
                    extra={"subscriber": label, "event": type(event).__name__},
                )
            finally:
                if handled is not None and not handled.done():
                    handled.set_result(None)
                queue.task_done()
