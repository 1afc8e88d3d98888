"""Room events out to the clients in the room (on every node, through the client manager)."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from server.rooms.chat_privacy import ChatPrivacy
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
    """The members of `room` who read its chat (see `rooms.chat_privacy`)."""
    return f"chat:{room}"


def operator_chat_channel(room: str, epoch: str) -> str:
    """The operator's side of `room` reading its chat while `operators_read_chat` is on.

    The epoch changes at each switch-off, and chat goes only to the current epoch's channel
    and only while the setting is on, so switching it off cuts every such connection on
    every node at once, with no message between nodes; they read again when they join
    again with the setting on.
    """
    return f"chat-operators:{epoch}:{room}"


class Broadcaster:
    def __init__(self, signaling: Signaling, privacy: ChatPrivacy):
        self._signaling = signaling
        self._privacy = privacy

    async def __call__(self, event: RoomEvent) -> None:
        wired = wire_event(event)
        if wired is None:
            return
        if isinstance(event, ChatPosted):
            # Published once, where the message is first stored (a resend of the same
            # client_id is answered from the store and publishes nothing), so this counts
            # each message once, never its retries.
            self._signaling.metrics.chat_messages.inc()
            await self._signaling.sio.emit(*wired, room=chat_channel(event.room))
            await self._to_operator_side(event.room, wired)
        else:
            await self._signaling.emit_room(event.room, *wired)

    async def _to_operator_side(self, room: str, wired: tuple[str, dict[str, Any]]) -> None:
        """Live chat to the operator's side: only while the setting is on, and each delivery
        audited, one row per reader (on this node from its connections, on the others from
        the roster: one who joined there before the last switch-off is logged though the
        message no longer reaches them)."""
        epoch = await self._privacy.live_epoch()
        if epoch is None:
            return
        channel = operator_chat_channel(room, epoch)
        signaling = self._signaling
        actors = []
        for sid, _ in list(signaling.sio.manager.get_participants("/", channel)):
            conn = signaling.connections.get(sid)
            if conn is not None:
                actors.append(f"{conn.token.role}:{conn.identity}")
        if signaling.roster is not None:
            try:
                elsewhere = await signaling.roster.elsewhere(room)
            except (RedisError, OSError):  # then the emit cannot reach other nodes either
                elsewhere = []
            for identity, role in elsewhere:
                if await self._privacy.operator_side(room, identity, role):
                    actors.append(f"{role}:{identity}")
        for actor in actors:
            await self._privacy.audit(
                actor, purpose="room_live", granted=True, messages=1, room=room
            )
        if actors:
            await signaling.sio.emit(*wired, room=channel)
