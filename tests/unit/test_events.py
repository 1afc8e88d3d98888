"""The in-process event bus: kinds filter, pacing, and a subscriber that fails."""

from __future__ import annotations

import asyncio
import logging

import pytest

from server.rooms.events import (
    ChatPosted,
    EventBus,
    ParticipantLeft,
    PresenceChanged,
    RoomEvent,
    SessionEnded,
)


def chat(room: str, n: int) -> ChatPosted:
    return ChatPosted(
        room, id=n, identity="ada", name="Ada", text=f"m{n}", client_id=f"c{n}", posted_at=0, ts=0
    )


class Collect:
    def __init__(self) -> None:
        self.events: list[RoomEvent] = []

    async def __call__(self, event: RoomEvent) -> None:
        self.events.append(event)


async def test_a_subscriber_that_declared_kinds_gets_those_and_no_others() -> None:
    bus = EventBus()
    everything, leaves = Collect(), Collect()
    bus.subscribe(everything, "everything")
    bus.subscribe(leaves, "leaves", kinds=(ParticipantLeft, SessionEnded))
    published = [
        chat("r", 1),
        ParticipantLeft("r", identity="ada", reason="left"),
        PresenceChanged("r", identity="bo", presence="away"),
        SessionEnded("r", started_at=0.0),
    ]
    for event in published:
        bus.publish(event)
    await bus.close()
    assert everything.events == published
    assert leaves.events == [published[1], published[3]]


async def test_publish_completes_once_the_paced_subscriber_has_handled_the_event() -> None:
    bus = EventBus()
    release = asyncio.Event()
    handled: list[RoomEvent] = []

    async def fan_out(event: RoomEvent) -> None:
        await release.wait()
        handled.append(event)

    bus.subscribe(fan_out, "fan-out", paced=True, kinds=(ChatPosted,))
    posted = bus.publish(chat("r", 1))
    await asyncio.sleep(0.01)  # bounded: the loop runs on, and still nothing completes it
    assert not posted.done()
    release.set()
    await posted
    assert handled == [chat("r", 1)]
    # An event the paced subscriber does not take holds nobody up.
    assert bus.publish(SessionEnded("r", started_at=0.0)).done()
    await bus.close()


async def test_a_failing_subscriber_is_logged_and_keeps_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[RoomEvent] = []

    async def flaky(event: RoomEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("boom")

    bus.subscribe(flaky, "flaky", paced=True)
    with caplog.at_level(logging.ERROR, logger="pairwise.events"):
        await bus.publish(chat("r", 1))
        await bus.publish(chat("r", 2))
    assert seen == [chat("r", 1), chat("r", 2)]
    assert [r.message for r in caplog.records] == ["event subscriber failed"]
    await bus.close()
