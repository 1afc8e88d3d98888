"""The main process's side of the media workers: `MediaService` on N SFU processes.

Each room is pinned to one worker (the one with the fewest rooms) when its first media
arrives, and the pin is forgotten when the worker says the room's media is gone, so a
room's participants always meet on one SFU, as in mediasoup. Signaling, the registry
and the event bus stay here: room events of a pinned room go to its worker, the
worker's media events come back onto the bus, its ladder steps are applied to the
registry, and its messages to a client go out through signaling.

A worker that dies is noticed at once (its socket's EOF): each participant whose media
was on it gets `media_failed` (`worker_lost`), which the client answers with
`media_reconnect`; a replacement worker starts, and the reconnect pins the room again.
The ladder's memory of each participant (the rung the monitor holds them on, the mode
above it, whether the network put them there) comes to main with each step the worker
takes, so the reconnect hands it to the next worker: back up to the rung they were on,
never above it on account of the restart, then on as before.

Starting does not wait for the workers: HTTP, chat and signaling answer at once, and a
media request that finds no worker ready waits for one (`READY_WAIT_SECONDS`), then gets
the retryable `media_unavailable`. A worker that keeps dying soon after it starts is
restarted after a growing pause (`restart_delay`) and shows in /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from server.config import Settings
from server.errors import NotFound, PairwiseError
from server.media.probe import MediaProbes
from server.media.service import Connected
from server.media.sfu import Notify
from server.media.workers.channel import Channel, ChannelClosed, decode_event, encode_event
from server.rooms.events import (
    EventBus,
    MediaConnectionLost,
    MediaModeChanged,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    SessionEnded,
)
from server.rooms.model import MediaMode
from server.rooms.registry import RoomRegistry

log = logging.getLogger("pairwise.media.workers")

WORKER_LOST = "worker_lost"
TO_WORKER = (ParticipantJoined, ParticipantLeft, SessionEnded, MediaModeChanged)
START_TIMEOUT_SECONDS = 60.0
# How long a media request waits for a worker to be ready (starting, or replacing one
# that died) before `media_unavailable`: a start took 2-9 s here under load.
READY_WAIT_SECONDS = 20.0
STABLE_SECONDS = 30.0  # a worker that lived this long was not crash-looping
RESTART_FIRST_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
CRASH_LOOP_FAILURES = 3  # quick deaths in a row that make it a crash loop


def restart_delay(failures: int) -> float:
    """The pause before restarting a worker after `failures` quick deaths (or failed
    starts) in a row: none after a worker that ran a while, then doubling to a cap."""
    if failures <= 0:
        return 0.0
    return float(min(RESTART_MAX_SECONDS, RESTART_FIRST_SECONDS * 2 ** (failures - 1)))


OnMessage = Callable[["WorkerHandle", dict[str, Any]], None]


@dataclass(eq=False)
class WorkerHandle:
    index: int
    process: asyncio.subprocess.Process
    channel: Channel
    rooms: set[str] = field(default_factory=set)
    streams: int = 0
    metrics: list[list[Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return not self.channel.closed.done()


class WorkerPool:
    """`MediaService` on SFU worker processes."""

    def __init__(
        self,
        settings: Settings,
        registry: RoomRegistry,
        bus: EventBus,
        metrics_registry: CollectorRegistry | None,
        count: int,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.bus = bus
        self.count = count
        self.probes = MediaProbes(settings)  # pre-join checks stay here: they have no room
        self.notify: Notify | None = None
        # Worker-side parts to load ("module:function", called with the worker).
        self.extensions: list[str] = []
        self.on_message: dict[str, OnMessage] = {}
        self.on_worker_lost: list[Callable[[set[str]], None]] = []
        self.on_pinned: list[Callable[[str], None]] = []  # a room got a (new) worker
        # Awaited before each worker's start request (tests: a slow start).
        self.before_start: Callable[[int], Awaitable[None]] | None = None
        self.workers: list[WorkerHandle | None] = [None] * count
        self.failures: list[int] = [0] * count  # quick deaths in a row, per worker slot
        self.restarts = 0
        self._ready = asyncio.Event()
        self._ladders: dict[tuple[str, str], dict[str, Any]] = {}  # the ladder's memory
        self._restores: dict[tuple[str, str], dict[str, Any]] = {}  # for the next connect
        self._pins: dict[str, WorkerHandle] = {}
        self._seq: dict[str, int] = {}
        self._connected: dict[str, set[str]] = {}  # room → who has a connection on its worker
        self._metrics = WorkerMetrics(self)
        if metrics_registry is not None:
            metrics_registry.register(self._metrics)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def set_notify(self, notify: Notify) -> None:
        self.notify = notify

    async def start(self) -> None:
        """Start the workers in the background; `ready` waits for one."""
        self.bus.subscribe(self._to_worker, "media-workers", kinds=TO_WORKER)
        for index in range(self.count):
            self._spawn_task(self._keep(index))

    async def ready(self, timeout: float = READY_WAIT_SECONDS) -> bool:
        """Whether a worker is ready, waiting up to `timeout` for one."""
        if not self.alive_workers():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
        return bool(self.alive_workers())

    def alive_workers(self) -> list[WorkerHandle]:
        return [w for w in self.workers if w is not None and w.alive]

    def crash_looping(self) -> list[int]:
        """The worker slots whose process keeps dying soon after it starts."""
        return [i for i, n in enumerate(self.failures) if n >= CRASH_LOOP_FAILURES]

    async def stop(self) -> None:
        self._stopping = True
        await self.probes.close_all()
        for worker in self.workers:
            if worker is not None:
                await worker.channel.close()
        for worker in self.workers:
            if worker is not None:
                try:
                    async with asyncio.timeout(10):
                        await worker.process.wait()
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _spawn(self, index: int) -> WorkerHandle:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.media.workers.worker",
                str(theirs.fileno()),
                self.settings.event_loop,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        holder: list[WorkerHandle] = []
        channel = Channel(
            reader, writer, self._refuse, lambda op, args: self._message(holder[0], op, args)
        )
        worker = WorkerHandle(index, process, channel)
        holder.append(worker)
        start = {"settings": self.settings.model_dump(mode="json"), "extensions": self.extensions}
        try:
            if self.before_start is not None:
                await self.before_start(index)
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await channel.request("start", start)
        except BaseException:
            await channel.close()  # not left running: nothing would watch it
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        self.workers[index] = worker
        self._ready.set()
        log.info("media worker started", extra={"worker": index, "pid": process.pid})
        return worker

    async def _keep(self, index: int) -> None:
        """Keep worker `index` running: start it, and when it dies, start another, after a
        growing pause while it keeps dying soon after it starts."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                worker = await self._spawn(index)
            except Exception:
                log.exception("media worker start failed", extra={"worker": index})
                self.failures[index] += 1
            else:
                began = loop.time()
                await self._watch(worker)
                if self._stopping:
                    return
                lived = loop.time() - began
                self.failures[index] = 0 if lived >= STABLE_SECONDS else self.failures[index] + 1
            self.restarts += 1
            delay = restart_delay(self.failures[index])
            if index in self.crash_looping():
                log.error(
                    "media worker crash loop",
                    extra={"worker": index, "failures": self.failures[index], "delay": delay},
                )
            if delay:
                await asyncio.sleep(delay)  # a backoff: nothing to wait on but time

    async def _watch(self, worker: WorkerHandle) -> None:
        """Until `worker` dies; then everyone whose media was on it is told."""
        await worker.channel.closed
        if self._stopping:
            return
        code = await worker.process.wait()
        log.error(
            "media worker lost",
            extra={"worker": worker.index, "pid": worker.pid, "exit_code": code},
        )
        if self.workers[worker.index] is worker:
            self.workers[worker.index] = None
        if not self.alive_workers():
            self._ready.clear()
        await self._lost(worker)

    async def _lost(self, worker: WorkerHandle) -> None:
        """Everyone whose media was on `worker` rebuilds it (on another worker)."""
        rooms = set(worker.rooms)
        worker.rooms.clear()
        self._metrics.retire(worker)
        failed = []
        for room in rooms:
            if self._pins.get(room) is worker:
                del self._pins[room]
            self._seq.pop(room, None)
            failed += [(room, who) for who in self._connected.pop(room, set())]
        for callback in self.on_worker_lost:
            callback(rooms)
        for room, identity in failed:
            participant = self.registry.participant(room, identity)
            if participant is not None:
                self._remember_rung(room, identity, participant.media_mode)
            if participant is not None and participant.media_mode in (
                MediaMode.VIDEO,
                MediaMode.AUDIO,
            ):
                self.registry.set_media_mode(room, identity, MediaMode.TEXT, WORKER_LOST)
            self.bus.publish(MediaConnectionLost(room, identity=identity, reason=WORKER_LOST))
            if self.notify is not None:
                await self.notify(room, identity, "media_failed", {"reason": WORKER_LOST})

    def _remember_rung(self, room: str, identity: str, rung: MediaMode) -> None:
        """What the next worker's ladder needs of a participant whose media was lost: the
        rung they were on and what the lost worker's ladder knew about them (forgotten if
        they have set their own mode since, as the ladder itself would)."""
        memory = self._ladders.pop((room, identity), None) or {}
        if memory.get("last_set") != str(rung):
            memory = {}
        self._restores[(room, identity)] = {"rung": str(rung), "memory": memory}

    def _forget(self, room: str, identity: str | None = None) -> None:
        for kept in (self._ladders, self._restores):
            for key in [k for k in kept if k[0] == room and identity in (None, k[1])]:
                del kept[key]

    # -- pins --------------------------------------------------------------------------

    def worker_of(self, room: str) -> WorkerHandle | None:
        """The worker the room's media is pinned to, if any."""
        worker = self._pins.get(room)
        return worker if worker is not None and worker.alive else None

    def pin(self, room: str) -> WorkerHandle | None:
        """The room's worker, pinning it to the one with the fewest rooms if it has none;
        None while no worker is ready."""
        try:
            return self._pin(room)
        except PairwiseError:
            return None

    def _pin(self, room: str) -> WorkerHandle:
        worker = self.worker_of(room)
        if worker is not None:
            return worker
        alive = self.alive_workers()
        if not alive:
            raise PairwiseError(
                "media is starting or restarting; try again in a moment",
                code="media_unavailable",
                status=503,
            )
        worker = min(alive, key=lambda w: (len(w.rooms), w.index))
        self._pins[room] = worker
        worker.rooms.add(room)
        for callback in self.on_pinned:
            callback(room)
        return worker

    def _stamped(self, room: str, args: dict[str, Any]) -> dict[str, Any]:
        self._seq[room] = self._seq.get(room, 0) + 1
        return {"room": room, "seq": self._seq[room], **args}

    def send_room(self, room: str, op: str, args: dict[str, Any], pin: bool = True) -> bool:
        """A one-way message about `room` to its worker (pinning it first with `pin`);
        False when there was nowhere to send it."""
        worker = self.pin(room) if pin else self.worker_of(room)
        if worker is None:
            return False
        worker.channel.send(op, self._stamped(room, args))
        return True

    async def _call(self, room: str, op: str, args: dict[str, Any], pin: bool = False) -> Any:
        if pin and self.worker_of(room) is None:
            await self.ready()  # starting, or replacing one that died: bounded
        worker = self._pin(room) if pin else self.worker_of(room)
        if worker is None:
            raise NotFound(
                "there is no media connection; send media_offer first", code="no_media_connection"
            )
        try:
            return await worker.channel.request(op, self._stamped(room, args))
        except ChannelClosed:
            raise PairwiseError(
                "the media worker stopped; reconnect", code=WORKER_LOST, status=503
            ) from None

    def _mode(self, room: str, identity: str) -> str:
        return str(self.registry.require(room, identity).media_mode)

    # -- MediaService ------------------------------------------------------------------

    async def connect(
        self,
        room: str,
        identity: str,
        offer_sdp: str,
        may_publish: bool = True,
        reconnect_reason: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> Connected:
        args = {
            "identity": identity,
            "mode": self._mode(room, identity),
            "sdp": offer_sdp,
            "may_publish": may_publish,
            "reconnect_reason": reconnect_reason,
            "sources": sources,
        }
        restore = self._restores.pop((room, identity), None)
        if restore is not None:
            args["restore"] = restore
        try:
            value = await self._call(room, "connect", args, pin=True)
        except BaseException:
            if restore is not None:  # for their next try
                self._restores.setdefault((room, identity), restore)
            raise
        self._connected.setdefault(room, set()).add(identity)
        return Connected(value["sdp"], value["refused"])

    async def answer(self, room: str, identity: str, answer_sdp: str, revision: int) -> None:
        args = {"identity": identity, "sdp": answer_sdp, "revision": revision}
        await self._call(room, "answer", args)

    async def control(
        self,
        room: str,
        identity: str,
        audio: bool | None = None,
        video: bool | None = None,
        receive_video: bool | None = None,
        screen: bool | None = None,
    ) -> dict[str, bool]:
        args = {
            "identity": identity,
            "mode": self._mode(room, identity),
            "audio": audio,
            "video": video,
            "receive_video": receive_video,
            "screen": screen,
        }
        value: dict[str, bool] = await self._call(room, "control", args, pin=True)
        return value

    async def view(
        self, room: str, identity: str, views: Sequence[tuple[str, str, int, int]]
    ) -> int:
        value: int = await self._call(
            room, "view", {"identity": identity, "views": [list(v) for v in views]}
        )
        return value

    async def disconnect(self, room: str, identity: str) -> bool:
        if self.worker_of(room) is None:
            return False
        closed: bool = await self._call(room, "disconnect", {"identity": identity})
        self._connected.get(room, set()).discard(identity)
        return closed

    async def room_stats(
        self, room: str, identities: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        if self.worker_of(room) is None:
            return None
        value: dict[str, dict[str, Any]] | None = await self._call(
            room, "stats", {"identities": identities}
        )
        return value

    def forwarded_streams(self) -> int:
        return sum(w.streams for w in self.workers if w is not None)

    def health(self) -> dict[str, Any] | None:
        looping = self.crash_looping()
        if not looping:
            return None
        return {"count": self.count, "ready": len(self.alive_workers()), "crash_looping": looping}

    # -- messages ----------------------------------------------------------------------

    async def _refuse(self, op: str, args: dict[str, Any]) -> Any:
        raise NotFound(f"the main process answers no {op!r}", code="unknown_operation")

    async def _to_worker(self, event: RoomEvent) -> None:
        if isinstance(event, ParticipantLeft):
            self._connected.get(event.room, set()).discard(event.identity)
            self._forget(event.room, event.identity)
        elif isinstance(event, SessionEnded):
            self._forget(event.room)
        worker = self.worker_of(event.room)
        if worker is not None:
            worker.channel.send("event", encode_event(event))

    def _message(self, worker: WorkerHandle, op: str, args: dict[str, Any]) -> None:
        if op == "report":
            worker.streams, worker.metrics = args["streams"], args["metrics"]
        elif op == "notify" and self.notify is not None:
            room, identity = args["room"], args["identity"]
            self._spawn_task(self.notify(room, identity, args["event"], args["data"]))
        elif op == "event":
            event = decode_event(args)
            if isinstance(event, MediaConnectionLost):
                self._connected.get(event.room, set()).discard(event.identity)
            self.bus.publish(event)
        elif op == "set_media_mode":
            self._set_media_mode(args)
        elif op == "released":
            room = args["room"]
            if self._pins.get(room) is worker and self._seq.get(room) == args["seq"]:
                del self._pins[room]
                worker.rooms.discard(room)
                self._seq.pop(room, None)
                self._connected.pop(room, None)
        elif op in self.on_message:
            self.on_message[op](worker, args)

    def _set_media_mode(self, args: dict[str, Any]) -> None:
        """A step the worker's ladder monitor decided, applied to the real registry."""
        room, identity = args["room"], args["identity"]
        if self.registry.participant(room, identity) is None:
            return
        if args.get("ladder") is not None:
            self._ladders[(room, identity)] = args["ladder"]
        with contextlib.suppress(NotFound):
            self.registry.set_media_mode(
                room, identity, MediaMode(args["mode"]), args["reason"], args["choice"]
            )

    def _spawn_task(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class WorkerMetrics(Collector):
    """The workers' `pairwise_sfu_*` metrics under their own names, summed over workers.
    The counters of a worker that died are kept, so the totals never go down."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._retired: dict[tuple[str, str], float] = {}

    def retire(self, worker: WorkerHandle) -> None:
        for _, kind, _, samples in worker.metrics:
            if kind == "counter":
                for name, labels, value in samples:
                    key = (name, _labels_key(labels))
                    self._retired[key] = self._retired.get(key, 0.0) + value

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        totals: dict[tuple[str, str], float] = dict(self._retired)
        labels_of: dict[str, dict[str, str]] = {}
        family_of: dict[str, str] = {}
        sources = [w.metrics for w in self._pool.workers if w is not None]
        for metrics in sources:
            for name, kind, documentation, samples in metrics:
                if name not in families:
                    families[name] = Metric(name, documentation, kind)
                for sample, labels, value in samples:
                    labels_key = _labels_key(labels)
                    totals[(sample, labels_key)] = totals.get((sample, labels_key), 0.0) + value
                    labels_of[labels_key] = labels
                    family_of[sample] = name
        for (sample, labels_key), value in totals.items():
            family = families.get(family_of.get(sample, ""))
            if family is not None:
                family.add_sample(sample, labels_of.get(labels_key, {}), value)
        return [*families.values(), *self._pool_metrics()]

    def _pool_metrics(self) -> list[Metric]:
        pool = self._pool
        ready = Metric("pairwise_media_workers_ready", "Media workers ready to take rooms", "gauge")
        ready.add_sample("pairwise_media_workers_ready", {}, len(pool.alive_workers()))
        count = Metric("pairwise_media_workers_configured", "Media workers this node runs", "gauge")
        count.add_sample("pairwise_media_workers_configured", {}, pool.count)
        looping = Metric(
            "pairwise_media_workers_crash_looping",
            f"Media worker slots whose process died soon after starting "
            f"{CRASH_LOOP_FAILURES} or more times in a row (restarts back off)",
            "gauge",
        )
        looping.add_sample("pairwise_media_workers_crash_looping", {}, len(pool.crash_looping()))
        restarts = Metric(
            "pairwise_media_worker_restarts",
            "Media worker restarts (after one died or failed to start)",
            "counter",
        )
        restarts.add_sample("pairwise_media_worker_restarts_total", {}, pool.restarts)
        return [ready, count, looping, restarts]


def _labels_key(labels: dict[str, str]) -> str:
    return "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))
