"""Room events out to the clients in the room (on every node, through the client manager)."""

from __future__ import annotations

from typing import Any

from server.rooms.events import (
    ChatPosted,
    MediaModeChanged,
    ParticipantJoined,
    ParticipantLeft,
    PresenceChanged,
    RoomEvent,
)
from server.signaling.server import Signaling


def wire_event(event: RoomEvent) -> tuple[str, dict[str, Any]] | None:
    """The Socket.IO event name and payload for a room event, or None if clients don't see it."""
    match event:
        case ParticipantJoined():
            return "participant_joined", {
                "identity": event.identity,
                "name": event.name,
                "role": event.role,
                "presence": "online",
                "media_mode": event.media_mode,
                "rejoined": event.rejoined,
                "joined_at": event.ts,
            }
        case ParticipantLeft():
            left: dict[str, Any] = {"identity": event.identity, "reason": event.reason}
            if event.reason == "disconnected":
                left["grace_seconds"] = event.grace_seconds
            return "participant_left", left
        case PresenceChanged():
            return "presence", {"identity": event.identity, "presence": event.presence}
        case MediaModeChanged():
            return "media_mode", {
                "identity": event.identity,
                "mode": event.mode,
                "previous": event.previous,
                "reason": event.reason,
                "choice": event.choice,
            }
        case ChatPosted():
            return "chat", {
                "id": event.id,
                "room": event.room,
                "from": {"identity": event.identity, "name": event.name},
                "text": event.text,
                "ts": event.posted_at,
                "client_id": event.client_id,
            }
    return None


def chat_channel(room: str) -> str:
    """The connections of `room` that may read its chat (see `rooms.chat_privacy`)."""
    return f"chat:{room}"


class Broadcaster:
    def __init__(self, signaling: Signaling):
        self._signaling = signaling

    async def __call__(self, event: RoomEvent) -> None:
        wired = wire_event(event)
        if wired is None:
            return
        if isinstance(event, ChatPosted):
            await self._signaling.sio.emit(*wired, room=chat_channel(event.room))
        else:
            await self._signaling.emit_room(event.room, *wired)
