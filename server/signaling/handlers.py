"""The room and chat events: join, leave, chat, history, typing, read, presence, media_mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from server.auth import Grant, Role
from server.cluster.placement import Placement
from server.errors import Forbidden, InvalidInput, RateLimited
from server.rooms.chat import ChatService
from server.rooms.model import CHOICE_PREFIX, MediaMode, Presence, is_choice
from server.signaling.broadcast import chat_channel, operator_chat_channel
from server.signaling.ratelimit import Buckets
from server.signaling.schemas import (
    ChatIn,
    Empty,
    HistoryIn,
    JoinIn,
    MediaModeIn,
    PresenceIn,
    ReadIn,
    TypingIn,
)
from server.signaling.server import Ack, Connection, Signaling, person_channel, room_channel


class RoomHandlers:
    def __init__(
        self,
        signaling: Signaling,
        chat: ChatService,
        placement: Callable[[str], Awaitable[Placement]] | None = None,
        require_open: Callable[[str], Awaitable[None]] | None = None,
        pair_title: Callable[[str], Awaitable[str | None]] | None = None,
    ):
        self.signaling = signaling
        self.roster = signaling.roster
        self.placement = placement
        self.registry = signaling.registry
        self.chat = chat
        # Raises Forbidden(room_closed) for a room whose pair ended (PairStore.require_open_room).
        self.require_open = require_open
        # The title of the pair owning a room (PairStore.title_of_room), shown in its header.
        self.pair_title = pair_title
        self.settings = signaling.settings
        # Kept past a disconnect (reconnecting must not refill it); forgotten once refilled.
        self._chat_buckets = Buckets(
            self.settings.chat_rate_per_second * 60, self.settings.chat_burst
        )
        on = signaling.on
        on("join", JoinIn, needs_join=False)(self.join)
        on("lobby", Empty, needs_join=False)(self.lobby)
        on("leave", Empty)(self.leave)
        on("chat", ChatIn)(self.post)
        on("history", HistoryIn)(self.history)
        on("typing", TypingIn)(self.typing)
        on("read", ReadIn)(self.read)
        on("presence", PresenceIn)(self.presence)
        on("media_mode", MediaModeIn)(self.media_mode)
        signaling.on_disconnect(self.disconnected)

    async def join(self, conn: Connection, payload: JoinIn) -> Ack:
        token = conn.token
        if self.require_open is not None:
            await self.require_open(token.room)
        mode = MediaMode(payload.media_mode)
        if mode in (MediaMode.VIDEO, MediaMode.AUDIO) and not token.can(Grant.PUBLISH):
            mode = MediaMode.TEXT
        result = self.registry.join(
            token.room, token.identity, token.name, str(token.role), conn.sid, media_mode=mode
        )
        conn.joined = True
        operator_side, live = await self._chat_reader(conn)
        reads_chat = live is not None
        await self.signaling.sio.enter_room(conn.sid, room_channel(token.room))
        await self.signaling.sio.enter_room(conn.sid, person_channel(token.room, token.identity))
        if conn.chat_channel not in (None, live):  # joined again: an old epoch's channel
            await self.signaling.sio.leave_room(conn.sid, conn.chat_channel)
        conn.chat_channel = live
        if live is not None:
            await self.signaling.sio.enter_room(conn.sid, live)
        if result.replaced_connection is not None:
            await self._drop_replaced(result.replaced_connection)
        await self.signaling.joined(conn)
        history, more = [], False
        if reads_chat:
            limit = self.settings.history_limit
            history = await self.chat.store.history(token.room, limit + 1)
            more, history = len(history) > limit, history[-limit:]
            if operator_side:
                await self._audit(conn, "room_join", len(history), granted=True)
        self._count()
        participants = await self._everyone(token.room)
        ack_node: dict[str, Any] = {
            "name": self.settings.node_name,
            "url": self.settings.base_url,
            "home": True,
        }
        if self.placement is not None:
            home = await self.placement(token.room)
            ack_node = {
                "name": home.node,
                "url": home.url,
                "home": home.node == self.settings.node_name,
            }
        title = await self._title(token.room)
        return {
            "node": ack_node,
            "room": {
                **result.room.public(),
                "observers_may_chat": result.room.observers_may_chat,
                "title": title,  # the pair's title; None for a room no pair owns
            },
            "you": result.participant.public(),
            "participants": participants,
            "history": [m.to_wire() for m in history],
            "history_has_more": more,  # earlier messages than these (the `history` event)
            "reads": await self.chat.store.read_markers(token.room) if reads_chat else {},
            "chat_private": not reads_chat,
        }

    async def lobby(self, conn: Connection, payload: Empty) -> Ack:
        """Before joining: the room's title (a pair's room is called by it, not its id) and who
        is in, on every node, by name and role."""
        people = [
            {"name": p["name"], "role": p["role"]}
            for p in await self._everyone(conn.room)
            if p["identity"] != conn.identity
        ]
        return {"participants": people, "title": await self._title(conn.room)}

    async def _everyone(self, room_id: str) -> list[dict[str, Any]]:
        """Who is in the room: this node's participants, and the other nodes' from the roster."""
        room = self.registry.get(room_id)
        participants = [p.public() for p in room.participants.values()] if room else []
        if self.roster is not None:
            here = {p["identity"] for p in participants}
            try:
                elsewhere = await self.roster.participants(room_id)
            except (RedisError, OSError):
                elsewhere = []  # Redis is away: this node still serves whom it holds
            participants += [p for p in elsewhere if p["identity"] not in here]
            participants.sort(key=lambda p: p["joined_at"])
        return participants

    async def _title(self, room_id: str) -> str | None:
        """The title of the pair owning the room; None for a room no pair owns."""
        return await self.pair_title(room_id) if self.pair_title is not None else None

    async def leave(self, conn: Connection, payload: Empty) -> Ack:
        self.registry.leave(conn.room, conn.identity, connection=conn.sid, reason="left")
        conn.joined = False
        await self.signaling.sio.leave_room(conn.sid, room_channel(conn.room))
        if conn.chat_channel is not None:
            await self.signaling.sio.leave_room(conn.sid, conn.chat_channel)
            conn.chat_channel = None
        self._count()
        return {"ok": True}

    async def post(self, conn: Connection, payload: ChatIn) -> Ack:
        self._require_chat(conn)
        if self.require_open is not None:  # joined before the pair ended: chat is read-only now
            await self.require_open(conn.room)
        if not self._chat_buckets.get((conn.room, conn.identity)).take():
            raise RateLimited("too many chat messages; wait a moment")
        message = await self.chat.post(
            conn.room, conn.identity, conn.token.name, payload.text, payload.client_id
        )
        return {"id": message.id, "ts": message.ts}

    async def history(self, conn: Connection, payload: HistoryIn) -> Ack:
        operator_side, live = await self._chat_reader(conn)
        if live is None:
            await self._audit(conn, "room_history", 0, granted=False)
            raise Forbidden("the program does not let operators read chat", code="chat_private")
        limit = payload.limit or self.settings.history_limit
        messages = await self.chat.store.history(conn.room, limit + 1, before=payload.before)
        has_more = len(messages) > limit
        if operator_side:
            await self._audit(conn, "room_history", min(len(messages), limit), granted=True)
        return {"messages": [m.to_wire() for m in messages[-limit:]], "has_more": has_more}

    async def _chat_reader(self, conn: Connection) -> tuple[bool, str | None]:
        """Whether the connection reads chat from the operator's side, and the live chat
        channel it may be in (None: it may not read chat)."""
        privacy = self.chat.privacy
        side = await privacy.operator_side(conn.room, conn.identity, str(conn.token.role))
        if not side:
            return False, chat_channel(conn.room)
        epoch = await privacy.live_epoch()
        return True, None if epoch is None else operator_chat_channel(conn.room, epoch)

    async def _audit(self, conn: Connection, purpose: str, messages: int, granted: bool) -> None:
        """A read of the room's chat by the operator's side goes to the audit log."""
        await self.chat.privacy.audit(
            f"{conn.token.role}:{conn.identity}",
            purpose=purpose,
            granted=granted,
            messages=messages,
            room=conn.room,
        )

    async def typing(self, conn: Connection, payload: TypingIn) -> Ack:
        self._require_chat(conn)
        await self.signaling.emit_room(
            conn.room,
            "typing",
            {"identity": conn.identity, "typing": payload.typing},
            skip_sid=conn.sid,
        )
        return {"ok": True}

    async def read(self, conn: Connection, payload: ReadIn) -> Ack:
        marker = await self.chat.store.mark_read(conn.room, conn.identity, payload.up_to)
        await self.signaling.emit_room(
            conn.room, "read", {"identity": conn.identity, "up_to": marker}
        )
        return {"up_to": marker}

    async def presence(self, conn: Connection, payload: PresenceIn) -> Ack:
        self.registry.set_presence(conn.room, conn.identity, Presence(payload.presence))
        return {"presence": payload.presence}

    async def media_mode(self, conn: Connection, payload: MediaModeIn) -> Ack:
        mode = MediaMode(payload.mode)
        if mode in (MediaMode.VIDEO, MediaMode.AUDIO):
            conn.token.require(Grant.PUBLISH)
        if is_choice(payload.reason):
            raise InvalidInput(f"reason may not start with {CHOICE_PREFIX!r}; send choice: true")
        self.registry.set_media_mode(
            conn.room, conn.identity, mode, payload.reason, choice=payload.choice
        )
        return {"mode": payload.mode}

    async def disconnected(self, conn: Connection) -> None:
        """A client that closed its socket left (the others' tiles go now); a dropped one
        may be back, and the others show it as reconnecting for the room's grace period."""
        if conn.joined:
            reason = "left" if conn.said_goodbye else "disconnected"
            self.registry.leave(conn.room, conn.identity, connection=conn.sid, reason=reason)
            self._count()

    def _require_chat(self, conn: Connection) -> None:
        if conn.token.can(Grant.CHAT):
            return
        room = self.registry.get(conn.room)
        if conn.token.role == Role.OBSERVER and room is not None and room.observers_may_chat:
            return
        raise Forbidden(f"role {conn.token.role} may read but not write in this room")

    async def _drop_replaced(self, sid: str) -> None:
        old = self.signaling.connections.get(sid)
        if old is not None:
            old.joined = False  # its disconnect must not remove the new connection
        await self.signaling.emit_to(
            sid, "error", {"code": "replaced", "message": "you joined from somewhere else"}
        )
        await self.signaling.sio.disconnect(sid)

    def _count(self) -> None:
        rooms = self.registry.rooms()
        self.signaling.metrics.rooms.set(len(rooms))
        self.signaling.metrics.participants.set(sum(len(r.participants) for r in rooms))
