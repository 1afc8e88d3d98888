"""Run a scenario: ramp participants up, hold for the duration, drain, stop, measure.

Every loop here is bounded by the scenario's clock, so a run always ends by itself; a stop
request (Ctrl-C, SIGTERM) cuts it short and still returns what was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import psutil

from loadtests import phone
from loadtests.metrics_scraper import MetricsScraper, NodesScraper
from loadtests.participant import Measurements, Participant, Spec
from loadtests.phone import PhoneResult
from loadtests.progress import Progress, Snapshot
from loadtests.scenario import Scenario

TICK_S = 1.0
TOKEN_CONCURRENCY = 20
TOKEN_RETRY_S = 1.0
RECOVERY_RETRY_S = 0.25  # between rounds of asking the live nodes where a room went
CLOSE_TIMEOUT_S = 15.0
INTERRUPT_DRAIN_S = 2.0


class SetupError(Exception):
    """The run cannot start (server unreachable, admin key refused); one line."""


@dataclass
class TimelinePoint:
    t: float
    joined: int
    connected: int
    sent: int
    in_flight: int
    errors: int
    client_cpu_percent: float
    client_cpu_wait_percent: float | None  # waiting for a CPU (Linux): an overloaded machine


@dataclass
class RunResult:
    scenario: Scenario
    url: str
    run_id: str
    started_at: float  # Unix time
    finished_at: float
    measurements: Measurements
    timeline: list[TimelinePoint]
    scraper: MetricsScraper | NodesScraper
    specs: list[Spec]
    interrupted: bool = False
    ended_early: str | None = None
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    phone: PhoneResult | None = None
    phone_rooms: list[str] = field(default_factory=list)
    cluster: bool = False  # cluster mode: participants reconnect when their node dies
    shard: tuple[int, int] | None = None  # (i, n): worker i of a distributed run of n


def plan(scenario: Scenario, run_id: str, shard: tuple[int, int] | None = None) -> list[Spec]:
    """Who joins, in ramp-up order (room by room), with the media shares assigned evenly.
    A `shard` (i, n) of a distributed run takes the rooms whose number is i modulo n, so
    the workers of one run share its room names and never a room."""
    specs: list[Spec] = []
    for r in range(scenario.rooms):
        if shard is not None and r % shard[1] != shard[0]:
            continue
        room = f"{scenario.room_prefix}-{run_id}-{r:05d}"
        for p in range(scenario.participants_per_room):
            specs.append(
                Spec(
                    room=room,
                    identity=f"{room}-p{p}",
                    role="mentor" if p == 0 else "mentee",
                    messages_per_second=scenario.chat.messages_per_second,
                    text_length=scenario.chat.text_length,
                )
            )
    media = scenario.media
    if media.enabled:
        mode = "video" if media.video is not None else "audio"
        order = list(range(len(specs)))
        random.Random(run_id).shuffle(order)  # spread the shares over rooms
        text_only = round(media.text_only_share * len(specs))
        failing = round(media.failing_share * len(specs))
        for rank, index in enumerate(order):
            if rank >= text_only:
                specs[index].media_mode = mode
                specs[index].fails_media = rank < text_only + failing
    return specs


def everyone_failed(participants: list[Participant]) -> bool:
    return not any(p.alive and p.joined for p in participants)


def cpu_wait_seconds(pid: int | str = "self") -> float | None:
    """Seconds the process's main thread has spent runnable but waiting for a CPU (Linux
    schedstat); None where that is not available."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        url: str,
        admin_key: str,
        progress: Progress | None = None,
        run_id: str | None = None,
        cluster: bool = False,
        nodes: list[str] | None = None,
        shard: tuple[int, int] | None = None,
    ):
        self.shard = shard
        self.scenario = scenario
        self.url = url.rstrip("/")
        # Cluster mode: the nodes come from `GET /api/v1/nodes`; each participant connects
        # to the node that holds its room, as a browser does, and every node is scraped.
        # Several --url: these are the nodes (all of them), instead of /api/v1/nodes.
        self.cluster = cluster or nodes is not None
        self._given_nodes = [n.rstrip("/") for n in nodes] if nodes else None
        self._node_urls: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self.admin_key = admin_key
        self.progress = progress or Progress(quiet=True)
        self.run_id = run_id or time.strftime("%m%d%H%M") + secrets.token_hex(2)
        self.m = Measurements()
        self.stop_requests = 0
        self._wake = asyncio.Event()
        self._join_slots = asyncio.Semaphore(scenario.concurrent_joins)
        self._media_module: Any = None
        self._abort = asyncio.Event()  # a stop request: end the phone calls now
        self._pins: list[str] = []
        self._phone_rooms: list[str] = []
        self._phone_task: asyncio.Task[PhoneResult] | None = None

    def request_stop(self) -> None:
        """Ctrl-C / SIGTERM: stop sending, drain briefly, write the report. Twice: no drain."""
        self.stop_requests += 1
        self._wake.set()

    async def run(self) -> RunResult:
        s = self.scenario
        connector = aiohttp.TCPConnector(limit=0)  # every participant holds a WebSocket
        async with aiohttp.ClientSession(connector=connector) as session:
            self._session = session
            await self._preflight(session)
            ledger = None
            if s.media.enabled:
                from loadtests import media  # aiortc is heavy: only load it when needed

                self._media_module = media
                self.progress.note("encoding the media loops once ...")
                await asyncio.get_running_loop().run_in_executor(None, media.prepare, s.media)
                ledger = media.MediaLedger()
            self.m = Measurements()  # the run's clock starts here
            self.m.media_ledger = ledger
            specs = plan(s, self.run_id, self.shard)
            tokens = await self._tokens(session, specs)
            if s.phone.enabled:
                await self._room_pins(session, specs)
            nodes, homes = [], {}
            if self.cluster:
                nodes = self._node_urls = self._given_nodes or await self._nodes(session)
                homes = await self._homes(session, specs)
            self.m.restart_clock()
            started_at = time.time()
            scraper: MetricsScraper | NodesScraper = (
                NodesScraper(nodes, session, s.scrape_interval_s, self.m.now, self.m.error)
                if self.cluster
                else MetricsScraper(
                    self.url, session, s.scrape_interval_s, self.m.now, self.m.error
                )
            )
            scrape_stop = asyncio.Event()
            scrape_task = asyncio.create_task(scraper.run(scrape_stop))
            stop_sending, finish = asyncio.Event(), asyncio.Event()
            participants = [
                Participant(spec, homes.get(spec.room, self.url), session, self.m) for spec in specs
            ]
            ramp_step = s.ramp_up_s / len(specs) if len(specs) > 1 else 0.0
            tasks = [
                asyncio.create_task(
                    self._live(p, i * ramp_step, tokens.get(p.spec.identity), stop_sending, finish)
                )
                for i, p in enumerate(participants)
            ]
            result = RunResult(
                s, self.url, self.run_id, started_at, started_at, self.m, [], scraper, specs
            )
            self.progress.note(
                f"run {self.run_id}: {s.name}, {s.rooms} rooms x {s.participants_per_room} "
                f"= {s.participants} participants against {self.url}"
            )
            result.phone_rooms = self._phone_rooms
            result.cluster = self.cluster
            result.shard = self.shard
            if self.cluster:
                result.notes.append(
                    f"cluster of {len(nodes)} nodes: "
                    + ", ".join(f"{url} ({list(homes.values()).count(url)} rooms)" for url in nodes)
                )
            await self._drive(result, tasks, participants, stop_sending, finish)
            if self._phone_task is not None:
                result.phone = await self._end_calls(self._phone_task)
            if scraper.unavailable is None and not everyone_failed(participants):
                await scraper.scrape()  # the counters as the traffic ends
            result.phases["closing"] = round(self.m.now(), 3)
            if self.m.media_ledger is not None:
                self.m.media_ledger.end_at = time.perf_counter()
            finish.set()
            await self._close(participants, tasks)
            scrape_stop.set()
            await scrape_task
            result.finished_at = time.time()
            result.phases["end"] = round(self.m.now(), 3)
            if scraper.unavailable:
                result.notes.append(f"server metrics unavailable: {scraper.unavailable}")
            self.progress.finish()
            return result

    async def _preflight(self, session: aiohttp.ClientSession) -> None:
        for node in dict.fromkeys([self.url, *(self._given_nodes or [])]):
            await self._healthy(session, node)
        status, body = await self._post_token(
            session, f"{self.scenario.room_prefix}-probe", "probe", "mentee"
        )
        if status in (401, 403):
            raise SetupError(f"the server refused the admin key (HTTP {status})")
        if status != 201:
            raise SetupError(f"POST /api/v1/tokens answered HTTP {status}: {body}"[:300])

    @staticmethod
    async def _healthy(session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as r:
                if r.status != 200:
                    raise SetupError(f"{url}/healthz answered HTTP {r.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SetupError(f"cannot reach {url}: {exc or type(exc).__name__}") from None

    async def _get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(
            self.url + path,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as r:
            body = await r.json(content_type=None)
            if r.status != 200 or not isinstance(body, dict):
                raise SetupError(f"GET {path} answered HTTP {r.status}")
            return body

    async def _nodes(self, session: aiohttp.ClientSession) -> list[str]:
        """The live nodes' URLs, from `GET /api/v1/nodes`."""
        body = await self._get(session, "/api/v1/nodes")
        urls = [str(node["url"]).rstrip("/") for node in body.get("nodes", [])]
        if not urls:
            raise SetupError("GET /api/v1/nodes lists no live node")
        return urls

    async def _homes(self, session: aiohttp.ClientSession, specs: list[Spec]) -> dict[str, str]:
        """Each room's node (`GET /api/v1/rooms/{room}/node`, which places a new room)."""
        slots = asyncio.Semaphore(TOKEN_CONCURRENCY)
        homes: dict[str, str] = {}

        async def place(room: str) -> None:
            async with slots:
                homes[room] = str((await self._get(session, f"/api/v1/rooms/{room}/node"))["url"])

        self.progress.note("asking the cluster where each room lives ...")
        await asyncio.gather(*(place(room) for room in dict.fromkeys(s.room for s in specs)))
        return {room: url.rstrip("/") for room, url in homes.items()}

    async def _room_pins(self, session: aiohttp.ClientSession, specs: list[Spec]) -> None:
        """The dial-in PIN of every room that gets a caller (evenly spread over the rooms)."""
        s = self.scenario
        if phone.sipp_path() is None:
            raise SetupError("phone legs need sipp, which is not installed")
        rooms = list(dict.fromkeys(spec.room for spec in specs))
        count = max(1, round(s.phone.share_of_rooms * len(rooms)))
        chosen = [rooms[int(i * len(rooms) / count)] for i in range(count)]
        for room in chosen:
            async with session.post(
                f"{self.url}/api/v1/rooms/{room}/pin",
                headers={"Authorization": f"Bearer {self.admin_key}"},
                timeout=aiohttp.ClientTimeout(total=15),
            ) as r:
                body = await r.json(content_type=None)
            if r.status == 404:
                raise SetupError("the server has no phone dial-in (PAIRWISE_SIP_BIND is unset)")
            if r.status != 200 or not isinstance(body, dict) or "pin" not in body:
                raise SetupError(f"POST /api/v1/rooms/{room}/pin answered HTTP {r.status}")
            self._pins.append(str(body["pin"]))
            self._phone_rooms.append(room)

    def _start_calls(self) -> None:
        s = self.scenario
        host = urlsplit(self.url).hostname or "127.0.0.1"
        placing = len(self._pins) / s.phone.calls_per_second
        hold = max(1.0, s.duration_s - placing - 2)
        self.progress.note(f"placing {len(self._pins)} phone calls to {host}:{s.phone.sip_port}")
        self._phone_task = asyncio.create_task(
            phone.place_calls(
                host, s.phone.sip_port, self._pins, hold, s.phone.calls_per_second, self._abort
            )
        )

    async def _end_calls(self, task: asyncio.Task[PhoneResult]) -> PhoneResult:
        """The calls hang up by themselves at the end of the steady phase; a stop request
        (or sipp overrunning) ends them."""
        if self.stop_requests:
            self._abort.set()
        done, _ = await asyncio.wait([task], timeout=CLOSE_TIMEOUT_S)
        if not done:
            self._abort.set()
        result = await task
        if result.problem:
            self.m.error("phone_sipp", result.problem)
        for _ in range(result.failed):
            self.m.error("phone_call_failed", "see sipp's statistics")
        missing = [r for r in self._phone_rooms if r not in self.m.phone_seen]
        if result.successful and missing:
            for room in missing:
                self.m.error("phone_not_in_room", room)
        return result

    async def _post_token(
        self, session: aiohttp.ClientSession, room: str, identity: str, role: str
    ) -> tuple[int, Any]:
        async with session.post(
            self.url + "/api/v1/tokens",
            json={"room": room, "identity": identity, "name": identity, "role": role},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = None
            return r.status, body

    async def _tokens(self, session: aiohttp.ClientSession, specs: list[Spec]) -> dict[str, str]:
        """Every participant's join token, before the clock starts: issuing them is setup,
        not load. A server that rate-limits token requests (HTTP 429) is waited for."""
        tokens: dict[str, str] = {}
        slots = asyncio.Semaphore(TOKEN_CONCURRENCY)
        throttled = False

        async def issue(spec: Spec) -> None:
            nonlocal throttled
            async with slots:
                while not self.stop_requests:
                    try:
                        status, body = await self._post_token(
                            session, spec.room, spec.identity, spec.role
                        )
                    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                        self.m.error("token_unreachable", f"{spec.identity}: {exc!r}")
                        return
                    if status == 429:
                        if not throttled:
                            throttled = True
                            self.progress.note(
                                "the server limits token requests per address (HTTP 429): "
                                "waiting; for big tests raise PAIRWISE_TOKENS_PER_MINUTE"
                            )
                        await asyncio.sleep(TOKEN_RETRY_S)
                        continue
                    if status == 201 and isinstance(body, dict) and "token" in body:
                        tokens[spec.identity] = str(body["token"])
                    else:
                        self.m.error(f"token_http_{status}", f"{spec.identity}: {body!r}"[:300])
                    return

        self.progress.note(f"issuing {len(specs)} join tokens ...")
        await asyncio.gather(*(issue(spec) for spec in specs))
        return tokens

    async def _live(
        self,
        p: Participant,
        start_at: float,
        token: str | None,
        stop_sending: asyncio.Event,
        finish: asyncio.Event,
    ) -> None:
        """One participant's whole life; never raises."""
        if start_at > 0:
            try:
                await asyncio.wait_for(stop_sending.wait(), start_at)
                return  # stopped before its turn
            except TimeoutError:
                pass
        if stop_sending.is_set():
            return
        try:
            if token is None:
                return  # its token could not be issued: an error already says why
            async with self._join_slots:
                joined = await p.connect_and_join(token, elsewhere_next=self.cluster)
            if not joined and self.cluster and p.unreachable:
                # Its room's node did not take the connection (it died after placing the
                # room): go where the room is now, as after losing a node.
                joined = await self._recover(p, token, stop_sending, first=True)
                if not joined:
                    self.m.error("connect_failed", f"{p.spec.identity}: no node took it")
            if not joined:
                return
            if self._media_module is not None and p.spec.media_mode != "text":
                p.media = self._media_module.MediaPeer(p, self.scenario.media, self.m)
                try:
                    await p.media.start()
                except Exception as exc:  # chat carries on, as it would for a person
                    self.m.error("media_start_failed", f"{p.spec.identity}: {exc!r}"[:300])
            await p.chat_until(stop_sending)
            while True:
                await p.wait_dead(finish)
                if not self.cluster or p.alive or stop_sending.is_set():
                    break
                if not await self._recover(p, token, stop_sending):
                    break
                await p.chat_until(stop_sending)
        except Exception as exc:  # a bug in the tool must show up in the report, not vanish
            self.m.error("load_tool_error", f"{p.spec.identity}: {exc!r}")
        finally:
            await p.close()

    async def _recover(
        self, p: Participant, token: str, stop_sending: asyncio.Event, first: bool = False
    ) -> bool:
        """Cluster mode: the participant's node died. Ask the live nodes where its room is
        now (`GET /api/v1/rooms/{room}/node` with its join token) until one answers with a
        node that takes the connection, and join there; the time from the loss to the join
        ack is the participant's recovery time. `first`: it had not joined yet (its first
        connect failed), so this is its join."""
        lost_at = time.perf_counter()
        assert self._session is not None
        while not stop_sending.is_set():
            for node in self._node_urls:
                if stop_sending.is_set():
                    return False
                try:
                    async with self._session.get(
                        f"{node}/api/v1/rooms/{p.spec.room}/node",
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=aiohttp.ClientTimeout(total=5),
                    ) as r:
                        body = await r.json(content_type=None)
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                    continue
                if r.status != 200 or not isinstance(body, dict) or "url" not in body:
                    continue
                p.moved(str(body["url"]).rstrip("/"))
                if await p.connect_and_join(token, again=not first, elsewhere_next=True):
                    self.m.recovery_ms.append((time.perf_counter() - lost_at) * 1000)
                    return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sending.wait(), RECOVERY_RETRY_S)
        return False

    async def _drive(
        self,
        result: RunResult,
        tasks: list[asyncio.Task[None]],
        participants: list[Participant],
        stop_sending: asyncio.Event,
        finish: asyncio.Event,
    ) -> None:
        s = self.scenario
        m = self.m
        sending_ends = s.ramp_up_s + s.duration_s
        drain_started: float | None = None
        seen_latencies = 0
        process = psutil.Process()
        process.cpu_percent(None)
        last_wait = (time.monotonic(), cpu_wait_seconds())
        phase = "ramp-up"
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()
            now = m.now()
            # Phase changes: ramp-up → steady → drain → done.
            if self.stop_requests and not result.interrupted:
                result.interrupted = True
                self.progress.note(f"stop requested at {now:.1f}s: draining, then the report")
            if self.stop_requests >= 2:
                stop_sending.set()
                break
            if not stop_sending.is_set() and (now >= sending_ends or result.interrupted):
                stop_sending.set()
            if phase == "ramp-up" and now >= s.ramp_up_s:
                phase = "steady"
                result.phases["steady"] = round(now, 3)
                if self._pins and not stop_sending.is_set():
                    self._start_calls()
            if stop_sending.is_set() and drain_started is None:
                drain_started = now
                phase = "drain"
                result.phases["drain"] = round(now, 3)
            everyone_gone = (
                now >= s.ramp_up_s
                and all(t.done() for t in tasks)
                and not any(p.alive and p.joined for p in participants)
            )
            if everyone_gone and not stop_sending.is_set():
                result.ended_early = "every participant has left or failed"
                self.progress.note(f"{now:.1f}s: {result.ended_early}; ending the run")
                stop_sending.set()
                drain_started = now
            # Sample.
            client_cpu = process.cpu_percent(None)
            wait_now = (time.monotonic(), cpu_wait_seconds())
            wait_percent = None
            if wait_now[1] is not None and last_wait[1] is not None and wait_now[0] > last_wait[0]:
                wait_percent = 100 * (wait_now[1] - last_wait[1]) / (wait_now[0] - last_wait[0])
            last_wait = wait_now
            new = [ms for _, ms in m.chat_latency[seen_latencies:]]
            seen_latencies = len(m.chat_latency)
            result.timeline.append(
                TimelinePoint(
                    t=round(now, 3),
                    joined=m.joined,
                    connected=m.connected,
                    sent=m.sent,
                    in_flight=m.in_flight(),
                    errors=sum(m.errors.values()),
                    client_cpu_percent=round(client_cpu, 1),
                    client_cpu_wait_percent=(
                        round(wait_percent, 1) if wait_percent is not None else None
                    ),
                )
            )
            server = result.scraper.latest()
            self.progress.update(
                Snapshot(
                    t=now,
                    phase=phase,
                    joined=m.joined,
                    target=len(participants),
                    sent=m.sent,
                    in_flight=result.timeline[-1].in_flight,
                    errors=result.timeline[-1].errors,
                    p50_ms=float(np.percentile(new, 50)) if new else None,
                    p99_ms=float(np.percentile(new, 99)) if new else None,
                    server_cpu=server.cpu_percent if server else None,
                    server_mb=server.memory_mb if server else None,
                    client_cpu=client_cpu,
                )
            )
            if drain_started is not None:
                limit = min(s.drain_s, INTERRUPT_DRAIN_S) if result.interrupted else s.drain_s
                if m.in_flight() == 0 or now - drain_started >= limit or everyone_gone:
                    break
        waits = [p.client_cpu_wait_percent for p in result.timeline]
        waits_known = [w for w in waits if w is not None]
        if waits_known and float(np.mean(waits_known)) >= 10:
            result.notes.append(
                f"the load generator waited for a CPU {np.mean(waits_known):.0f}% of the time "
                "(other work on its machine): latencies include that wait"
            )
        busy = [p.client_cpu_percent for p in result.timeline]
        if busy and max(busy) >= 90:
            result.notes.append(
                f"the load generator itself reached {max(busy):.0f}% of a core: latencies may "
                "include its own queueing; run it on another machine or split the scenario"
            )

    async def _close(
        self, participants: list[Participant], tasks: list[asyncio.Task[None]]
    ) -> None:
        """Each participant leaves by itself once `finish` is set; joins still hanging on
        a dead server are cancelled after a bound."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        await asyncio.wait(
            [asyncio.create_task(p.close()) for p in participants], timeout=CLOSE_TIMEOUT_S
        )
