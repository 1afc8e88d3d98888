"""A participant run inside a test network namespace (`ip netns exec NS python -m ...`).

It joins a room over Socket.IO at the server's veth address, publishes pre-encoded audio
and video through the SFU, and chats at a steady rate the way the browser client does:
each message keeps its `client_id` until it is acked, and is resent with the same one
after a timeout. It keeps its media up as docs/protocol-media.md asks of a client: when
the server says the connection is dead (`media_failed`) or its own connection fails or
closes, it builds a new one (`media_reconnect`) after a backoff of 1, 2, 4, then 8 s,
and goes on trying for as long as it runs. It prints one JSON object per line:

    {"event": "media", "state": "connected", "attempt": 0, "t": ...}
    {"event": "media_failed", "reason": "connection_closed", "t": ...}
    {"event": "reconnect", "attempt": 1, "reason": "...", "wait": 1, "t": ...}
    {"event": "ack", "client_id": "...", "id": 12, "tries": 1, "t": ...}
    {"event": "media_mode", "identity": ..., "mode": ..., "previous": ..., "reason": ..., "t": ...}
    {"event": "done", "acked": [...], "pending": [...], "t": ...}

"stop" on stdin ends the chatting; it waits for the last ack, prints `done` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pickle
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.media.support import Encoded, MediaClient
from tests.support.participants import SocketParticipant


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **data}), flush=True)


BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0)


class MediaKeeper:
    """Rebuilds the media connection with backoff whenever it is dead."""

    def __init__(self, client: MediaClient) -> None:
        self.client = client
        self.attempt = 0  # reconnects since media last connected
        self._dead = asyncio.Event()
        self._why = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.watch(self.client.pc)
        self.client.socket.sio.on("media_failed", self._on_failed)
        self._task = asyncio.create_task(self._run())

    def watch(self, pc: Any) -> None:
        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is not self.client.pc:
                return  # a replaced connection closing
            emit("media", state=pc.connectionState, attempt=self.attempt)
            if pc.connectionState == "connected":
                self.attempt = 0
            elif pc.connectionState in ("failed", "closed"):
                self.dead(f"own connection {pc.connectionState}")

    def dead(self, why: str) -> None:
        self._why = why
        self._dead.set()

    async def _on_failed(self, data: dict[str, Any]) -> None:
        emit("media_failed", reason=data.get("reason"))
        self.dead(f"server: {data.get('reason')}")

    async def _run(self) -> None:
        while True:
            await self._dead.wait()
            wait = BACKOFF_SECONDS[min(self.attempt, len(BACKOFF_SECONDS) - 1)]
            self.attempt += 1
            emit("reconnect", attempt=self.attempt, reason=self._why, wait=wait)
            await asyncio.sleep(wait)  # the backoff itself, as a real client does
            self._dead.clear()  # what failed meanwhile is the connection being replaced
            try:
                await self.client.reconnect(self._why[:200])
            except Exception as exc:  # refused or timed out: count it and back off again
                emit("reconnect_error", error=f"{type(exc).__name__}: {exc}"[:300])
                self._dead.set()
                continue
            pc = self.client.pc
            self.watch(pc)
            if pc.connectionState == "connected":  # connected before the watch began
                self.attempt = 0
                emit("media", state="connected", attempt=0)
            elif pc.connectionState in ("failed", "closed"):
                self.dead(f"own connection {pc.connectionState}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def load_frames(path: Path) -> tuple[list[Encoded], list[Encoded]]:
    video, audio = pickle.loads(path.read_bytes())
    return [Encoded(d, k) for d, k in video], [Encoded(d, k) for d, k in audio]


async def chat_forever(
    socket: SocketParticipant, prefix: str, interval: float, stop: asyncio.Event
) -> tuple[list[str], list[str]]:
    """Send one message per `interval` until `stop`; returns (acked, still pending)."""
    acked: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        client_id = f"{prefix}-{n}-{uuid.uuid4().hex[:8]}"
        tries = 0
        started = time.monotonic()
        while True:  # pending until acked; resending with the same client_id is safe
            tries += 1
            try:
                ack = await socket.chat(f"{prefix} message {n}", client_id)
            except Exception as exc:  # timeout, or a dropped connection
                emit("chat_retry", client_id=client_id, error=type(exc).__name__)
                if not socket.sio.connected:
                    return acked, [client_id]
                continue
            if "error" in ack:
                emit("chat_error", client_id=client_id, error=ack["error"])
                await asyncio.sleep(1)
                continue
            acked.append(client_id)
            emit(
                "ack",
                client_id=client_id,
                id=ack["id"],
                tries=tries,
                seconds=round(time.monotonic() - started, 3),
            )
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return acked, []


async def main(args: argparse.Namespace) -> None:
    video, audio = load_frames(Path(args.frames))
    socket = SocketParticipant(args.url, args.token)

    async def on_mode(data: dict[str, Any]) -> None:
        emit("media_mode", **data)

    async def on_disconnect(*_: Any) -> None:
        emit("disconnected")

    socket.sio.on("media_mode", on_mode)
    socket.sio.on("disconnect", on_disconnect)
    await socket.connect()
    await socket.join(media_mode="video")
    client = MediaClient(socket, decode=False)  # no ICE servers: host candidates only
    keeper = MediaKeeper(client)
    keeper.start()
    client.publish(video, audio, fps=args.fps)
    if args.quiet:  # muted, camera off: the tracks stay negotiated but send no RTP
        for track in client.tracks.values():
            track.silent = True
        await socket.call("media_control", {"audio": False, "video": False})
    await client.connect()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line or line.strip() == "stop":
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    acked, pending = await chat_forever(socket, args.prefix, args.interval, stop)
    emit("done", acked=acked, pending=pending)
    await keeper.stop()
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--frames", required=True, help="pickle of (video, audio) frames")
    parser.add_argument("--prefix", default="ada")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--quiet", action="store_true", help="muted with the camera off")
    asyncio.run(main(parser.parse_args()))
