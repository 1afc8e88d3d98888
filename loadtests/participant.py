"""A simulated participant: a Socket.IO client that joins, chats at a rate and checks delivery.

Delivery is checked end to end by `client_id`: when a participant sends, the ledger records
who was in the room (as this tool knows it); every `chat` event that arrives is matched
against that list, so each message is known as delivered, lost or duplicated per member.
All participants run in one process, so send and receive times share one clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio


@dataclass
class Message:
    room: str
    sender: str
    sent_at: float
    expected: frozenset[str]
    received: set[str] = field(default_factory=set)
    acked: bool = False
    unanswered: bool = False  # no ack (timeout, dropped connection): maybe stored


class Measurements:
    """Everything the participants observe, on the run's clock (seconds since start)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.members: dict[str, set[str]] = {}
        self.messages: dict[str, Message] = {}
        self.errors: Counter[str] = Counter()
        self.error_log: list[tuple[float, str, str]] = []
        self.join_ms: list[float] = []
        self.chat_latency: list[tuple[float, float]] = []  # (received at, ms) per delivery
        self.ack_ms: list[float] = []
        self.duplicates = 0
        self.unexpected = 0
        self.sent = 0
        self.joined = 0
        self.connected = 0
        self.gone = 0
        self.first_frame_ms: list[float] = []
        self.media_frames_sent = 0
        self.media_frames_expected = 0
        self.media_frames_received = 0
        self.media_ledger: Any = None  # a media.MediaLedger when the scenario has media
        self.media_latency_ms: list[float] = []  # video frame sent → received
        self.media_duplicates = 0
        self.fallback_ms: list[float] = []
        self.recovery_ms: list[float] = []  # cluster mode: connection lost → joined again
        self.phone_seen: set[str] = (
            set()
        )  # rooms where a caller arrived by phone  # failing on purpose → the server stepped down

    def restart_clock(self) -> None:
        """The run starts now (after setup); errors logged in setup keep their times."""
        self.started = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.started

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if len(self.error_log) < 200:  # the first ones explain; the counts say the rest
            self.error_log.append((round(self.now(), 3), kind, detail[:300]))

    def enter(self, room: str, identity: str) -> None:
        self.members.setdefault(room, set()).add(identity)

    def leave(self, room: str, identity: str) -> None:
        self.members.get(room, set()).discard(identity)

    def sending(self, client_id: str, room: str, sender: str) -> None:
        expected = frozenset(self.members.get(room, set()) | {sender})
        self.messages[client_id] = Message(room, sender, time.perf_counter(), expected)

    def acked(self, client_id: str) -> None:
        message = self.messages[client_id]
        message.acked = True
        self.sent += 1
        self.ack_ms.append((time.perf_counter() - message.sent_at) * 1000)

    def unanswered(self, client_id: str) -> None:
        """No ack came: counted apart from the acknowledged ones (see `delivery`)."""
        self.messages[client_id].unanswered = True

    def refused(self, client_id: str) -> None:
        """The server refused the message (error ack): it stored nothing, expect nothing."""
        self.messages.pop(client_id, None)

    def received(self, client_id: str, recipient: str) -> None:
        message = self.messages.get(client_id)
        if message is None or recipient not in message.expected:
            self.unexpected += 1
            return
        if recipient in message.received:
            self.duplicates += 1
            return
        message.received.add(recipient)
        if recipient != message.sender:
            latency = (time.perf_counter() - message.sent_at) * 1000
            self.chat_latency.append((self.now(), latency))

    def caught_up(self, client_id: str, recipient: str) -> None:
        """`recipient` got the message from the join history after reconnecting: delivered
        (late, so no latency), and neither a duplicate nor unexpected if it came live too."""
        message = self.messages.get(client_id)
        if message is not None and recipient in message.expected:
            message.received.add(recipient)

    def in_flight(self) -> int:
        return sum(1 for m in self.messages.values() if len(m.received) < len(m.expected))

    def delivery(self) -> dict[str, int]:
        """Counts over the messages the server acknowledged, and apart from them those whose
        ack never came (a timeout or a dropped connection: maybe stored, maybe not).

        `lost_messages` are acknowledged messages some member never received: the server
        promised them, so any is a failure. `unacked_messages` are the unanswered ones;
        `unacked_delivered` of those reached every member anyway."""
        acked = [m for m in self.messages.values() if m.acked]
        unacked = [m for m in self.messages.values() if m.unanswered and not m.acked]
        expected = sum(len(m.expected) for m in acked)
        got = sum(len(m.received) for m in acked)
        complete = sum(1 for m in acked if m.received >= m.expected)
        return {
            "messages_sent": self.sent,
            "messages_accepted": len(acked),
            "messages_received": complete,
            "deliveries_expected": expected,
            "deliveries_received": got,
            "lost_messages": len(acked) - complete,
            "lost_deliveries": expected - got,
            "unacked_messages": len(unacked),
            "unacked_delivered": sum(1 for m in unacked if m.received >= m.expected),
            "duplicated_messages": self.duplicates,
            "unexpected_messages": self.unexpected,
        }


@dataclass
class Spec:
    """Who a participant is and how it behaves."""

    room: str
    identity: str
    role: str
    messages_per_second: float
    text_length: int
    media_mode: str = "text"
    fails_media: bool = False


class Participant:
    """One simulated person. `run` returns when told to finish or when its connection dies."""

    def __init__(
        self, spec: Spec, url: str, session: aiohttp.ClientSession, measurements: Measurements
    ):
        self.spec = spec
        self.url = url
        self.m = measurements
        self._session = session
        self.sio = self._client()
        self.joined = False
        self.unreachable = False  # its last connect failed: no node took the connection
        self._closing = False
        self._dead = asyncio.Event()
        self._seq = 0
        self.media: Any = None  # a media.MediaPeer when the scenario has media

    def _client(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(
            serializer="msgpack",
            reconnection=False,
            http_session=self._session,
            handle_sigint=False,
        )
        sio.on("chat", self._on_chat)
        sio.on("error", self._on_error)
        sio.on("disconnect", self._on_disconnect)
        sio.on("participant_joined", self._on_joined)
        return sio

    def moved(self, url: str) -> None:
        """Its node died: a fresh connection to `url`, the room's node now."""
        self.url = url
        self.sio = self._client()
        self._dead = asyncio.Event()

    async def connect_and_join(
        self, token: str, again: bool = False, elsewhere_next: bool = False
    ) -> bool:
        """Connect and join; record the join time (connect start → join ack). `again`: a
        reconnect, which catches up from the join history (as a client resyncs) and is not
        a join of its own. `elsewhere_next`: a failed connect is not an error yet (the
        caller asks the cluster where the room is now and tries there; `unreachable`)."""
        started = time.perf_counter()
        self.unreachable = False
        try:
            await self.sio.connect(
                self.url,
                auth={"token": token},
                transports=["websocket"],
                socketio_path="socket.io",
                wait_timeout=15,
            )
        except (TimeoutError, socketio.exceptions.SocketIOError, OSError) as exc:
            self.unreachable = True
            # reconnecting, a node not up yet is part of the recovery time
            if not again and not elsewhere_next:
                self.m.error("connect_failed", f"{self.spec.identity}: {exc}")
            return False
        self.m.connected += 1
        call = await self._call_unless_dead("join", {"media_mode": self.spec.media_mode}, 15)
        if call is None:
            # Its node died under the join (a node killed as the ramp reached it): as a
            # connect no node took, the caller may go where the room is now.
            self.unreachable = True
            if not again and not elsewhere_next:
                self.m.error("join_no_ack", f"{self.spec.identity}: connection lost")
            return False
        try:
            ack = call.result()
        except (TimeoutError, socketio.exceptions.SocketIOError) as exc:
            self.m.error("join_timeout", f"{self.spec.identity}: {exc!r}")
            return False
        if not isinstance(ack, dict) or "error" in ack:
            code = _code(ack)
            self.m.error(f"join_{code}", f"{self.spec.identity}: {ack!r}"[:300])
            return False
        if again:
            for message in ack.get("history", []):
                if isinstance(message, dict) and isinstance(message.get("client_id"), str):
                    self.m.caught_up(message["client_id"], self.spec.identity)
        else:
            self.m.join_ms.append((time.perf_counter() - started) * 1000)
        self.m.joined += 1
        self.joined = True
        self.m.enter(self.spec.room, self.spec.identity)
        return True

    async def chat_until(self, stop_sending: asyncio.Event) -> None:
        """Send at the scenario's rate, each message with a fresh client_id, until told."""
        rate = self.spec.messages_per_second
        if rate <= 0:
            return
        interval = 1.0 / rate
        # Start at a random phase so a room's members do not all send in the same tick.
        delay = random.uniform(0, interval)
        while not self._dead.is_set() and not stop_sending.is_set():
            if await _wait_any(stop_sending, self._dead, timeout=delay):
                return
            began = time.perf_counter()
            await self._send_one()
            delay = max(0.0, interval - (time.perf_counter() - began))

    async def _send_one(self) -> None:
        self._seq += 1
        client_id = f"{self.spec.identity}.{self._seq}"
        text = f"{client_id} " + _filler(max(1, self.spec.text_length - len(client_id) - 1))
        self.m.sending(client_id, self.spec.room, self.spec.identity)
        call = await self._call_unless_dead("chat", {"text": text, "client_id": client_id}, 10)
        if call is None:
            self.m.unanswered(client_id)
            self.m.error("chat_no_ack", f"{client_id}: connection lost")
            return
        try:
            ack = call.result()
        except socketio.exceptions.TimeoutError:
            self.m.unanswered(client_id)
            self.m.error("chat_timeout", client_id)
            return
        except (socketio.exceptions.SocketIOError, asyncio.CancelledError) as exc:
            self.m.refused(client_id)
            if not self._closing:
                self.m.error("chat_not_sent", f"{client_id}: {exc!r}")
            return
        if isinstance(ack, dict) and "error" not in ack:
            self.m.acked(client_id)
        else:
            self.m.refused(client_id)
            self.m.error(f"chat_{_code(ack)}", f"{client_id}: {ack!r}"[:300])

    async def _call_unless_dead(
        self, event: str, data: Any, timeout: float
    ) -> asyncio.Future[Any] | None:
        """`event`'s call, answered or failed; None if the connection died first:
        python-socketio leaves a call pending until its timeout when the connection drops,
        and the answer cannot come any more."""
        call = asyncio.ensure_future(self.sio.call(event, data, timeout=timeout))
        dead = asyncio.ensure_future(self._dead.wait())
        try:
            await asyncio.wait([call, dead], return_when=asyncio.FIRST_COMPLETED)
        finally:
            dead.cancel()
        if call.done():
            return call
        call.cancel()
        return None

    async def wait_dead(self, finish: asyncio.Event) -> None:
        """Stay connected (receiving) until the run finishes or the connection drops."""
        await _wait_any(finish, self._dead)

    async def close(self) -> None:
        self._closing = True
        if self.joined:
            self.m.leave(self.spec.room, self.spec.identity)
        if self.media is not None:
            await self.media.close()
        if self.sio.connected:
            with contextlib.suppress(
                asyncio.TimeoutError, socketio.exceptions.SocketIOError, OSError
            ):
                await asyncio.wait_for(self.sio.disconnect(), 5)

    @property
    def alive(self) -> bool:
        return not self._dead.is_set()

    async def _on_chat(self, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("client_id"), str):
            self.m.received(data["client_id"], self.spec.identity)

    async def _on_joined(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("media_mode") == "phone":
            self.m.phone_seen.add(self.spec.room)

    async def _on_error(self, data: Any) -> None:
        self.m.error(f"server_{_code(data)}", f"{self.spec.identity}: {data!r}"[:300])

    async def _on_disconnect(self, reason: str = "") -> None:
        if self.joined:
            self.m.leave(self.spec.room, self.spec.identity)
        if not self._closing:
            self.m.error("disconnected", f"{self.spec.identity}: {reason}")
        if self.m.connected:
            self.m.connected -= 1
        if self.joined:
            self.m.joined -= 1
            self.joined = False
        self._dead.set()


def _code(ack: Any) -> str:
    if isinstance(ack, dict):
        error = ack.get("error", ack)
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"]
    return "bad_ack"


_LETTERS = string.ascii_letters + "     "


def _filler(length: int) -> str:
    return "".join(random.choices(_LETTERS, k=length)).strip() or "x"


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of the events is set (True) or the timeout passes (False)."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return bool(done)
