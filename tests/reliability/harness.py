"""A room under a network fault: a real server on a veth address, a publishing participant
inside a network namespace, and an observer on this machine.

The server subprocess listens on the host end of the veth pair; the participant
(`tests/reliability/participant.py`) runs inside the namespace, so every packet it sends
or receives, UDP media and the Socket.IO WebSocket alike, crosses the veth pair where the
fault is applied. The observer joins the same room in text mode from this machine: it
sees the `media_mode` events the health monitor sends to the room, and reads the chat
history at the end. Shared by the tests and `benchmarks/reliability.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.media.support import MediaClient, encode_audio, encode_video
from tests.reliability.participant import load_frames
from tests.support.netns import TestHost, create_test_host
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY, ROOT, ServerProcess

ROOM = "pair-net"
PUBLISHER = "ada"
OBSERVER = "bo"

# Small thresholds so that a fault and its recovery fit in a few seconds.
FAST_MEDIA = {
    "PAIRWISE_MEDIA_SILENCE_SECONDS": "2",
    "PAIRWISE_MEDIA_RECOVER_SECONDS": "2",
    "PAIRWISE_MEDIA_ICE_TIMEOUT_SECONDS": "10",
    "PAIRWISE_ICE_SERVERS": "[]",
}


@dataclass
class VethServer(ServerProcess):
    """A server process listening on one address (PAIRWISE_HOST) instead of 127.0.0.1."""

    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _admin_get(url: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        url,
        method="GET" if body is None else "POST",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def create_pair(url: str) -> str:
    """A mentoring pair of the publisher and the observer, meeting in ROOM."""
    members = [
        {"identity": PUBLISHER, "name": "Ada", "role": "mentee"},
        {"identity": OBSERVER, "name": "Bo", "role": "mentor"},
    ]
    pair = _admin_get(f"{url}/api/v1/pairs", {"members": members, "room": ROOM})
    return str(pair["id"])


def write_frames(path: Path) -> Path:
    """Pre-encoded media at a real call's rate: 640x480 VP8 at 15 fps (~500 kbit/s) and
    Opus (~47 kbit/s), so a 300 kbit/s link cannot carry it."""
    if not path.exists():
        video = encode_video(60, width=640, height=480, fps=15, keyint=30, bitrate=500_000)
        audio = encode_audio(100)
        frames = ([(f.data, f.key) for f in video], [(f.data, f.key) for f in audio])
        path.write_bytes(pickle.dumps(frames))
    return path


FAULTS: dict[str, Callable[[TestHost], None]] = {
    "udp_blocked": TestHost.block_udp,
    "loss_10": lambda host: host.drop_random(10),
    "rate_300k": lambda host: host.limit_rate(300),
}


@dataclass
class ModeChange:
    mode: str
    previous: str
    reason: str
    at: float  # time.time() when the observer received it


@dataclass
class ChatOutcome:
    acked: list[str]  # client_ids the participant got an ack for
    pending: list[str]  # client_ids never acked (the connection dropped)
    stored: list[str]  # client_ids in the room's history, in order
    retries: int  # sends repeated after a timeout

    @property
    def missing(self) -> list[str]:
        stored = set(self.stored)
        return [c for c in self.acked if c not in stored]

    @property
    def duplicates(self) -> list[str]:
        seen: set[str] = set()
        return [c for c in self.stored if c in seen or seen.add(c)]  # type: ignore[func-returns-value]


class NamespaceParticipant:
    """The participant script, running inside the namespace; its JSON lines as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.lines: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))
                self._arrived.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == event]

    async def wait_for(
        self, event: str, match: Callable[[dict[str, Any]], bool] = lambda _: True, timeout=20.0
    ) -> dict[str, Any]:
        async def seek() -> dict[str, Any]:
            while True:
                for line in self.of(event):
                    if match(line):
                        return line
                if self.proc.returncode is not None or self._reader.done():
                    raise RuntimeError(f"participant exited:\n{self.log()}")
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(seek(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {event} from the participant in {timeout} s:\n{self.log()}"
            ) from None

    async def stop(self, timeout: float = 30) -> dict[str, Any]:
        """Stop chatting; the `done` line with every acked client_id."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        done = await self.wait_for("done", timeout=timeout)
        await asyncio.wait_for(self.proc.wait(), 15)
        return done

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@dataclass
class FaultRoom:
    host: TestHost
    server: VethServer
    participant: NamespaceParticipant
    observer: SocketParticipant
    pair_id: str = ""
    modes: list[ModeChange] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- faults --------------------------------------------------------------------------

    def apply(self, fault: str) -> float:
        FAULTS[fault](self.host)
        return time.time()

    def heal(self) -> float:
        self.host.heal()
        return time.time()

    # -- what the room sees --------------------------------------------------------------

    def on_mode(self, data: dict[str, Any]) -> None:
        if data.get("identity") == PUBLISHER:
            self.modes.append(
                ModeChange(data["mode"], data["previous"], data["reason"], time.time())
            )
            self._changed.set()

    def modes_since(self, t: float) -> list[ModeChange]:
        return [m for m in self.modes if m.at >= t]

    async def wait_mode(
        self, since: float, match: Callable[[ModeChange], bool], timeout: float
    ) -> ModeChange:
        """The first `media_mode` for the publisher after `since` that matches."""

        async def seek() -> ModeChange:
            while True:
                for change in self.modes_since(since):
                    if match(change):
                        return change
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seek(), timeout)
        except TimeoutError:
            seen = [(m.mode, m.reason) for m in self.modes_since(since)]
            raise AssertionError(
                f"no matching media_mode within {timeout} s; saw {seen}; "
                f"stats {await self.stats()}\nserver log:\n{self.server.log()[-3000:]}"
            ) from None

    async def timeline(self) -> list[dict[str, Any]]:
        """The open session's timeline (kind, identity, detail), oldest first."""

        def fetch() -> list[dict[str, Any]]:
            base = f"{self.server.url}/api/v1/pairs/{self.pair_id}/sessions"
            session_id = _admin_get(base)["sessions"][-1]["id"]
            return list(_admin_get(f"{base}/{session_id}")["timeline"])

        return await asyncio.to_thread(fetch)

    async def stats(self) -> dict[str, Any]:
        """The SFU's view of the publisher (GET /api/v1/rooms/{room}/stats)."""

        def fetch() -> dict[str, Any]:
            request = urllib.request.Request(
                f"{self.server.url}/api/v1/rooms/{ROOM}/stats",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = json.loads(resp.read())
            return next(p for p in body["participants"] if p["identity"] == PUBLISHER)

        return await asyncio.to_thread(fetch)

    async def video_frames(self) -> int:
        """Video frames the SFU has received from the publisher so far."""
        published = (await self.stats()).get("published", [])
        return sum(p["frames"] for p in published if p["kind"] == "video")

    async def wait_video_flowing(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        first = await self.video_frames()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if await self.video_frames() > first + 10:
                return
        raise AssertionError(f"video never flowed: {await self.stats()}\n{self.participant.log()}")

    async def chat_outcome(self) -> ChatOutcome:
        """Stop the participant's chatting, then compare its acks with the stored history."""
        done = await self.participant.stop()
        stored: list[str] = []
        before: int | None = None
        while True:  # history pages go backwards, oldest first within a page
            query: dict[str, Any] = {"limit": 200}
            if before is not None:
                query["before"] = before
            page = await self.observer.call("history", query)
            stored = [m["client_id"] for m in page["messages"]] + stored
            if not page["has_more"] or not page["messages"]:
                break
            before = page["messages"][0]["id"]
        retries = len(self.participant.of("chat_retry"))
        return ChatOutcome(done["acked"], done["pending"], stored, retries)


@asynccontextmanager
async def fault_room(
    workdir: Path, frames: Path, quiet: bool = False, partner: bool = False
) -> AsyncIterator[FaultRoom]:
    """A server on a fresh test host's veth address, the publisher joined from inside the
    namespace with media connected and chat running, and an observer; all removed after.

    `quiet`: the participant is muted with the camera off (sends no RTP). `partner`: the
    observer publishes audio and video from this machine, which the participant receives.
    The room belongs to a pair of the two (`FaultRoom.pair_id`), so it has a session log.
    """
    host = create_test_host()
    server: VethServer | None = None
    participant: NamespaceParticipant | None = None
    observer: SocketParticipant | None = None
    partner_media: MediaClient | None = None
    try:
        server = VethServer(
            data_dir=workdir / "server",
            host=host.host_ip,
            env={"PAIRWISE_HOST": host.host_ip, **FAST_MEDIA},
        )
        await asyncio.to_thread(server.start)
        url = server.url
        pair_id = await asyncio.to_thread(create_pair, url)
        token = await asyncio.to_thread(issue_token, url, ROOM, PUBLISHER)
        observer_token = await asyncio.to_thread(issue_token, url, ROOM, OBSERVER, None, "mentor")
        log_path = workdir / "participant.log"
        log = log_path.open("wb")  # noqa: ASYNC230 - a file handed to the child
        proc = await asyncio.create_subprocess_exec(
            *host.exec_args(
                sys.executable,
                "-m",
                "tests.reliability.participant",
                "--url",
                url,
                "--token",
                token,
                "--frames",
                str(frames),
                *(["--quiet"] if quiet else []),
            ),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()  # the child keeps its own descriptor
        participant = NamespaceParticipant(proc, log_path)
        observer = SocketParticipant(url, observer_token)
        room = FaultRoom(host, server, participant, observer, pair_id=pair_id)
        observer.sio.on("media_mode", room.on_mode)
        await observer.connect()
        await observer.join(media_mode="video" if partner else "text")
        if partner:
            video, audio = await asyncio.to_thread(load_frames, frames)
            partner_media = MediaClient(observer, decode=False)
            partner_media.publish(video, audio)
            await partner_media.connect()
        await participant.wait_for("media", lambda line: line["state"] == "connected", 30)
        await participant.wait_for("ack")
        if not quiet:
            await room.wait_video_flowing()
        yield room
    finally:
        if partner_media is not None:
            with contextlib.suppress(Exception):
                await partner_media.close()
        if observer is not None:
            with contextlib.suppress(Exception):
                await observer.close()
        if participant is not None:
            await participant.kill()
        if server is not None and server.proc is not None:
            await asyncio.to_thread(server.stop)
        host.heal()
        host.remove()
