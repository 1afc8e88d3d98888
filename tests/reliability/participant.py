"""A participant run inside a test network namespace (`ip netns exec NS python -m ...`).

It joins a room over Socket.IO at the server's veth address, publishes pre-encoded audio
and video through the SFU, and chats at a steady rate the way the browser client does:
each message keeps its `client_id` until it is acked, and is resent with the same one
after a timeout. It prints one JSON object per line:

    {"event": "media", "state": "connected", "t": ...}
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

    @client.pc.on("connectionstatechange")
    def on_state() -> None:
        emit("media", state=client.pc.connectionState)

    client.publish(video, audio, fps=args.fps)
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
    await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--frames", required=True, help="pickle of (video, audio) frames")
    parser.add_argument("--prefix", default="ada")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--fps", type=float, default=15)
    asyncio.run(main(parser.parse_args()))
