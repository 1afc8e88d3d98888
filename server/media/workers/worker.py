"""A media worker process: a real `Sfu` on its own event loop, for the rooms pinned to it.

Started by the pool (pool.py) as `python -m server.media.workers.worker FD LOOP`, FD
being its end of a socket pair, LOOP the settings' event loop (server/event_loop.py); it
exits when the main process closes that socket or dies.
The main process keeps the room registry and Socket.IO: the worker's `RegistryMirror`
holds the participants of its rooms as main reports them, and what the worker's SFU
says goes to main over the channel (`notify`, room events, media mode steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from server import event_loop
from server.config import Settings
from server.errors import NotFound
from server.logs import configure_logging
from server.media.ladder_rules import LadderState
from server.media.metrics import MediaMetrics
from server.media.room_stats import room_media
from server.media.service import refused
from server.media.sfu import Sfu
from server.media.workers.channel import Channel, decode_event, encode_event
from server.rooms.events import (
    EventBus,
    MediaConnectionLost,
    MediaControlsChanged,
    MediaModeChanged,
    MediaQualitySampled,
    MediaReconnected,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    SessionEnded,
)
from server.rooms.model import MediaMode, Participant, Room
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.media.worker")

REPORT_SECONDS = 0.5  # load and metrics to main; rooms whose media is gone released
# What the worker's SFU publishes that the rest of the server listens to.
TO_MAIN = (MediaReconnected, MediaConnectionLost, MediaControlsChanged, MediaQualitySampled)

Send = Callable[[str, dict[str, Any]], None]


class RegistryMirror(RoomRegistry):
    """The room registry as the worker's SFU and ladder monitor see it: the main
    process's participants of this worker's rooms and their media modes. A step the
    ladder monitor decides goes to main, whose registry announces it; that event comes
    back here like every room event."""

    def __init__(self, bus: EventBus, send: Send) -> None:
        super().__init__(bus)
        self._send = send
        self._mirrored: dict[str, Room] = {}
        # What the ladder monitor remembers of a participant (after the step it just took).
        self.ladder_of: Callable[[str, str], dict[str, Any]] | None = None

    def get(self, room: str) -> Room | None:
        return self._mirrored.get(room)

    def participant(self, room: str, identity: str) -> Participant | None:
        found = self._mirrored.get(room)
        return found.participants.get(identity) if found else None

    def mirror(self, room: str, identity: str, mode: str) -> None:
        found = self._mirrored.setdefault(room, Room(name=room, capacity=0))
        participant = found.participants.get(identity)
        if participant is None:
            participant = Participant(identity=identity, name="", role="", connection="")
            found.participants[identity] = participant
        participant.media_mode = MediaMode(mode)

    def forget(self, room: str, identity: str | None = None) -> None:
        if identity is None:
            self._mirrored.pop(room, None)
        elif room in self._mirrored:
            self._mirrored[room].participants.pop(identity, None)

    def set_media_mode(
        self, room: str, identity: str, mode: MediaMode, reason: str, choice: bool = False
    ) -> bool:
        participant = self.require(room, identity)
        if participant.media_mode == mode:
            return False
        participant.media_mode = mode
        self._send(
            "set_media_mode",
            {
                "room": room,
                "identity": identity,
                "mode": str(mode),
                "reason": reason,
                "choice": choice,
                "ladder": self.ladder_of(room, identity) if self.ladder_of else None,
            },
        )
        return True


def ladder_memory(state: LadderState) -> dict[str, Any]:
    """The part of a participant's ladder state that outlives their connection (main keeps
    it, and hands it to the next worker if this one dies); its times are this process's."""
    return {
        "ceiling": None if state.ceiling is None else str(state.ceiling),
        "last_set": None if state.last_set is None else str(state.last_set),
        "network": state.network,
        "failed_climbs": state.failed_climbs,
    }


def ladder_state(memory: dict[str, Any]) -> LadderState:
    ceiling, last_set = memory.get("ceiling"), memory.get("last_set")
    return LadderState(
        ceiling=None if ceiling is None else MediaMode(ceiling),
        last_set=None if last_set is None else MediaMode(last_set),
        network=bool(memory.get("network")),
        failed_climbs=int(memory.get("failed_climbs") or 0),
    )


Request = Callable[[dict[str, Any]], Awaitable[Any]]
Message = Callable[[dict[str, Any]], None]


class Worker:
    """The worker's side of the channel: the SFU's operations by name."""

    def __init__(self, settings: Settings, channel_send: Send) -> None:
        self.settings = settings
        self.send = channel_send
        self.bus = EventBus()
        self.metrics_registry = CollectorRegistry()
        self.registry = RegistryMirror(self.bus, channel_send)
        self.sfu = Sfu(
            settings, self.registry, self.bus, MediaMetrics(self.metrics_registry), self._notify
        )
        self.registry.ladder_of = lambda room, who: ladder_memory(self.sfu.ladder.state(room, who))
        self._seq: dict[str, int] = {}  # room → the last request main numbered for it
        # Whether something other than the SFU's own media keeps a room here (the phone).
        self.holds: list[Callable[[str], bool]] = []
        self.requests: dict[str, Request] = {
            "connect": self._connect,
            "answer": self._answer,
            "control": self._control,
            "view": self._view,
            "disconnect": self._disconnect,
            "stats": self._stats,
        }
        self.messages: dict[str, Message] = {"event": self._event}
        self._reporting: asyncio.Task[None] | None = None

    async def start(self, extensions: list[str]) -> None:
        for path in extensions:  # e.g. the phone gateway's side (server.phone.worker_audio)
            module, _, name = path.partition(":")
            getattr(importlib.import_module(module), name)(self)
        await self.sfu.start()
        self.bus.subscribe(self._to_main, "main", kinds=TO_MAIN)
        self._reporting = asyncio.create_task(self._report())

    async def stop(self) -> None:
        if self._reporting is not None:
            self._reporting.cancel()
        await self.sfu.stop()
        await self.bus.close()

    async def request(self, op: str, args: dict[str, Any]) -> Any:
        self.seen(args)
        handler = self.requests.get(op)
        if handler is None:
            raise NotFound(f"no media operation {op!r}", code="unknown_operation")
        return await handler(args)

    def message(self, op: str, args: dict[str, Any]) -> None:
        self.seen(args)
        handler = self.messages.get(op)
        if handler is not None:
            handler(args)

    def seen(self, args: dict[str, Any]) -> None:
        """Main numbers what it sends about a room: the number lets it tell a release
        that crossed a newer request from one that did not."""
        if "seq" in args:
            self._seq[args["room"]] = args["seq"]
        if "mode" in args:
            self.registry.mirror(args["room"], args["identity"], args["mode"])

    async def _connect(self, args: dict[str, Any]) -> dict[str, Any]:
        room, identity = args["room"], args["identity"]
        sdp = await self.sfu.connect(
            room,
            identity,
            args["sdp"],
            may_publish=args["may_publish"],
            reconnect_reason=args.get("reconnect_reason"),
            sources=args.get("sources"),
        )
        restore = args.get("restore")
        if restore is not None:  # their media was on a worker that died
            memory = ladder_state(restore["memory"])
            self.sfu.ladder.restore(room, identity, MediaMode(restore["rung"]), memory)
        return {"sdp": sdp, "refused": refused(self.sfu, room, identity)}

    async def _answer(self, args: dict[str, Any]) -> None:
        await self.sfu.answer(args["room"], args["identity"], args["sdp"], args["revision"])

    async def _control(self, args: dict[str, Any]) -> dict[str, bool]:
        return self.sfu.control(
            args["room"],
            args["identity"],
            args.get("audio"),
            args.get("video"),
            args.get("receive_video"),
            args.get("screen"),
        ).public()

    async def _view(self, args: dict[str, Any]) -> int:
        views = [(str(o), str(s), int(w), int(h)) for o, s, w, h in args["views"]]
        return self.sfu.view(args["room"], args["identity"], views)

    async def _disconnect(self, args: dict[str, Any]) -> bool:
        return await self.sfu.disconnect(args["room"], args["identity"])

    async def _stats(self, args: dict[str, Any]) -> dict[str, Any] | None:
        return room_media(self.sfu.rooms.get(args["room"]), args["identities"])

    def _event(self, args: dict[str, Any]) -> None:
        """A room event from main: kept in the mirror, then to the SFU as in main."""
        event = decode_event(args)
        if isinstance(event, ParticipantJoined):
            self.registry.mirror(event.room, event.identity, event.media_mode)
        elif isinstance(event, MediaModeChanged) and self.registry.participant(
            event.room, event.identity
        ):
            self.registry.mirror(event.room, event.identity, event.mode)
        elif isinstance(event, ParticipantLeft):
            self.registry.forget(event.room, event.identity)
        elif isinstance(event, SessionEnded):
            self.registry.forget(event.room)
        self.bus.publish(event)

    async def _to_main(self, event: RoomEvent) -> None:
        self.send("event", encode_event(event))

    async def _notify(self, room: str, identity: str, event: str, data: dict[str, Any]) -> None:
        self.send("notify", {"room": room, "identity": identity, "event": event, "data": data})

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            try:
                self.report()
            except Exception:
                log.exception("media worker report failed")

    def report(self) -> None:
        """Load and metrics to main, and the rooms whose media is gone released."""
        for room, seq in list(self._seq.items()):
            if room not in self.sfu.rooms and not any(hold(room) for hold in self.holds):
                del self._seq[room]
                self.registry.forget(room)
                self.send("released", {"room": room, "seq": seq})
        self.send(
            "report",
            {"streams": self.sfu.forwarded_streams(), "metrics": snapshot(self.metrics_registry)},
        )


def snapshot(registry: CollectorRegistry) -> list[list[Any]]:
    """The registry's samples as plain data: [name, type, help, [[sample, labels, value]]]."""
    return [
        [
            family.name,
            family.type,
            family.documentation,
            [
                [s.name, s.labels, s.value]
                for s in family.samples
                if not s.name.endswith("_created")
            ],
        ]
        for family in registry.collect()
    ]


async def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    worker: Worker | None = None
    started = asyncio.Event()

    async def request(op: str, args: dict[str, Any]) -> Any:
        nonlocal worker
        if op == "start":
            settings = Settings.model_validate(args["settings"])
            configure_logging(settings.log_format, settings.log_level)
            worker = Worker(settings, channel.send)
            await worker.start(args["extensions"])
            started.set()
            return {"pid": os.getpid()}
        await started.wait()
        assert worker is not None
        return await worker.request(op, args)

    def message(op: str, args: dict[str, Any]) -> None:
        if worker is not None:
            worker.message(op, args)

    channel = Channel(reader, writer, request, message)
    await channel.closed  # main closed its end, or died
    if worker is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await worker.stop()


def main() -> None:
    # Ctrl-C reaches the whole process group: main shuts the workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    event_loop.run(serve(int(sys.argv[1])), event_loop.named(sys.argv[2]))


if __name__ == "__main__":
    main()
