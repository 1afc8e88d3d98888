"""Chat a node missed while its link to Redis was down, pushed to its clients afterwards.

Between nodes, Socket.IO's Redis manager publishes each event once and forgets it: a chat
message posted on one node while Redis is away (or while another node's subscription is
down) is acked and stored, but the other nodes' clients never hear of it, and nothing
replays it when Redis returns. Here the manager notes every chat id it delivers to this
node's clients, per room; each time its subscription comes back, the node reads the
room's recent messages from the shared database and pushes, to its own clients only, those
it never delivered. Clients already drop a `chat` whose `id` they have (it may come from
`join` history too).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import socketio

from server.rooms.chat import ChatStore
from server.rooms.registry import RoomRegistry
from server.signaling.broadcast import chat_channel
from server.tasks import BackgroundTasks

log = logging.getLogger("pairwise.catchup")

# Chat goes out on its own channel, to the connections that may read it (rooms.chat_privacy);
# catching up uses the same channel, so an observer kept from chat is kept from it here too.
CHAT_CHANNEL = chat_channel("")
CATCH_UP_LIMIT = 500  # the latest messages per room looked at after a gap
REMEMBERED_PER_ROOM = 2000  # chat ids remembered per room; older ones are past any gap
SKEW_SECONDS = 5.0  # nodes' clocks may differ this much (message times come from the poster)


class CatchUpRedisManager(socketio.AsyncRedisManager):
    """The Redis manager, noting which chat messages reached this node and when its
    subscription (re)starts."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel=channel)
        self._delivered: dict[str, tuple[set[int], deque[int]]] = {}
        self._subscriptions = 0
        self.last_heard = time.time()  # the last thing the subscription brought
        self.on_resubscribed: Callable[[float], Coroutine[Any, Any, object]] | None = None
        self._tasks = BackgroundTasks()

    def delivered(self, room: str, message_id: int) -> bool:
        found = self._delivered.get(room)
        return found is not None and message_id in found[0]

    def note(self, room: str, message_id: int) -> None:
        ids, order = self._delivered.setdefault(room, (set(), deque()))
        if message_id in ids:
            return
        ids.add(message_id)
        order.append(message_id)
        if len(order) > REMEMBERED_PER_ROOM:
            ids.discard(order.popleft())

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        channel = message.get("room")
        data = message.get("data")
        if (
            message.get("event") == "chat"
            and isinstance(channel, str)
            and channel.startswith(CHAT_CHANNEL)
            and isinstance(data, list)
            and data
            and isinstance(data[0], dict)
            and isinstance(data[0].get("id"), int)
        ):
            self.note(channel.removeprefix(CHAT_CHANNEL), data[0]["id"])
        await super()._handle_emit(message)

    # python-socketio internals (5.x): its listener calls `_redis_connect()` and then
    # `pubsub.subscribe(channel)` on every (re)connection, and reads with subscribe
    # confirmations ignored; `_handle_emit` delivers every event to this node's clients.
    def _redis_connect(self) -> None:
        super()._redis_connect()
        pubsub = self.pubsub
        subscribe = pubsub.subscribe

        async def subscribed(*args: Any, **kwargs: Any) -> Any:
            result = await subscribe(*args, **kwargs)
            self._subscribed()
            return result

        pubsub.subscribe = subscribed

    def _subscribed(self) -> None:
        self._subscriptions += 1
        if self._subscriptions > 1 and self.on_resubscribed is not None:
            self._tasks.spawn(self.on_resubscribed(self.last_heard))

    async def _listen(self) -> AsyncIterator[Any]:
        async for data in super()._listen():
            self.last_heard = time.time()
            yield data


class ChatCatchUp:
    def __init__(
        self,
        manager: CatchUpRedisManager,
        store: ChatStore,
        registry: RoomRegistry,
        sio: socketio.AsyncServer,
    ) -> None:
        self._manager = manager
        self._store = store
        self._registry = registry
        self._sio = sio
        manager.on_resubscribed = self.catch_up

    async def catch_up(self, since: float) -> int:
        """Push each room's messages stored since `since` that this node never delivered;
        how many were pushed."""
        pushed = 0
        for room in self._registry.rooms():
            if not room.participants:
                continue
            try:
                messages = await self._store.history(room.name, CATCH_UP_LIMIT)
            except Exception:
                log.exception("catch-up could not read chat", extra={"room": room.name})
                continue
            for message in messages:
                if message.ts < since - SKEW_SECONDS:
                    continue
                if self._manager.delivered(room.name, message.id):
                    continue
                self._manager.note(room.name, message.id)
                # To this node's clients only: each node catches up its own.
                await self._sio.emit(
                    "chat", message.to_wire(), room=chat_channel(room.name), ignore_queue=True
                )
                pushed += 1
        if pushed:
            log.info("pushed chat missed while redis was away", extra={"messages": pushed})
        return pushed
