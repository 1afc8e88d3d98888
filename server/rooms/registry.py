"""The rooms this node holds: who is in them, their presence and media mode.

Rooms open on the first join and close when they have stayed empty for the grace
period. A participant who joins again under the same identity replaces the old
connection, so nobody is ever in a room twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from server.errors import Conflict, NotFound
from server.rooms.events import (
    EventBus,
    MediaModeChanged,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    SessionEnded,
    SessionStarted,
)
from server.rooms.model import MediaMode, Participant, Presence, Room


class RoomFull(Conflict):
    code = "room_full"


@dataclass(frozen=True)
class JoinResult:
    room: Room
    participant: Participant
    replaced_connection: str | None  # the old connection of the same identity, to close


class RoomRegistry:
    def __init__(self, bus: EventBus, capacity: int = 8, grace_seconds: float = 30.0):
        self._bus = bus
        self._capacity = capacity
        self._grace = grace_seconds
        self._rooms: dict[str, Room] = {}
        self._closing: dict[str, asyncio.TimerHandle] = {}

    def get(self, room: str) -> Room | None:
        return self._rooms.get(room)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def participant(self, room: str, identity: str) -> Participant | None:
        found = self._rooms.get(room)
        return found.participants.get(identity) if found else None

    def require(self, room: str, identity: str) -> Participant:
        participant = self.participant(room, identity)
        if participant is None:
            raise NotFound(f"{identity!r} has not joined room {room!r}", code="not_joined")
        return participant

    def join(
        self,
        room: str,
        identity: str,
        name: str,
        role: str,
        connection: str,
        media_mode: MediaMode = MediaMode.TEXT,
    ) -> JoinResult:
        current = self._rooms.get(room)
        previous = current.participants.get(identity) if current else None
        if (
            current is not None
            and previous is None
            and len(current.participants) >= current.capacity
        ):
            raise RoomFull(f"room {room!r} is full ({current.capacity} participants)")
        if current is None:
            current = Room(name=room, capacity=self._capacity)
            self._rooms[room] = current
            self._bus.publish(SessionStarted(room))
        timer = self._closing.pop(room, None)
        if timer is not None:
            timer.cancel()
        participant = Participant(
            identity=identity, name=name, role=role, connection=connection, media_mode=media_mode
        )
        if previous is not None:
            participant.joined_at = previous.joined_at
        current.participants[identity] = participant
        self._bus.publish(
            ParticipantJoined(
                room,
                identity=identity,
                name=name,
                role=role,
                media_mode=str(media_mode),
                rejoined=previous is not None,
            )
        )
        replaced = previous.connection if previous and previous.connection != connection else None
        return JoinResult(current, participant, replaced)

    def leave(
        self, room: str, identity: str, connection: str | None = None, reason: str = "left"
    ) -> bool:
        """Remove a participant. With `connection`, only if that is still their connection
        (a replaced connection closing late must not remove its successor)."""
        current = self._rooms.get(room)
        participant = current.participants.get(identity) if current else None
        if current is None or participant is None:
            return False
        if connection is not None and participant.connection != connection:
            return False
        del current.participants[identity]
        grace = self._grace if reason == "disconnected" else 0.0
        self._bus.publish(
            ParticipantLeft(room, identity=identity, reason=reason, grace_seconds=grace)
        )
        if not current.participants:
            loop = asyncio.get_running_loop()
            self._closing[room] = loop.call_later(self._grace, self._close, room)
        return True

    def set_presence(self, room: str, identity: str, presence: Presence) -> bool:
        participant = self.require(room, identity)
        if participant.presence == presence:
            return False
        participant.presence = presence
        self._bus.publish(PresenceChanged(room, identity=identity, presence=str(presence)))
        return True

    def set_media_mode(
        self, room: str, identity: str, mode: MediaMode, reason: str, choice: bool = False
    ) -> bool:
        """Move a participant to `mode`; `choice` when they chose it themselves."""
        participant = self.require(room, identity)
        if participant.media_mode == mode:
            return False
        previous = participant.media_mode
        participant.media_mode = mode
        self._bus.publish(
            MediaModeChanged(
                room,
                identity=identity,
                mode=str(mode),
                previous=str(previous),
                reason=reason,
                choice=choice,
            )
        )
        return True

    def close_all(self) -> None:
        for timer in self._closing.values():
            timer.cancel()
        self._closing.clear()
        for name in list(self._rooms):
            self._close(name, force=True)

    def _close(self, room: str, force: bool = False) -> None:
        self._closing.pop(room, None)
        current = self._rooms.get(room)
        if current is None or (current.participants and not force):
            return
        del self._rooms[room]
        self._bus.publish(SessionEnded(room, started_at=current.started_at, ts=time.time()))
