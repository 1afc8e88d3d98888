"""Janus (the native C SFU) as the baseline of benchmarks.sfu.

The serve side writes a minimal Janus configuration into a directory (core, VideoRoom
plugin, HTTP transport on loopback; every other plugin, transport and logger
disabled) and execs `janus` with it, so the measured process is Janus itself:

- `event_loops = 2`: handles share two media loops instead of a thread each (the
  thread-per-handle default costs much system time on a 2-core machine);
- one room (`ROOM_ID`) with VP8 + Opus and no bitrate cap or periodic FIR;
- ICE only on this machine's non-loopback address: aioice never gathers 127.0.0.1,
  so Janus must offer an address the load processes also have; no STUN, no mDNS.

The load side talks to the VideoRoom over Janus's HTTP API: one Janus session per
load process (one long poll for its asynchronous events, matched to requests by
transaction) and one plugin handle per peer connection. The publisher joins with the
fixed id `PUBLISHER_ID`, which is how subscribers in other processes find its feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any, NoReturn

ROOM_ID = 1234
PUBLISHER_ID = 1
EVENT_LOOPS = 2
PLUGIN = "janus.plugin.videoroom"
KEEP = {"libjanus_videoroom.so", "libjanus_http.so"}


# -- the serve side -----------------------------------------------------------------


def local_address() -> str:
    """This machine's non-loopback IPv4 address (the one aioice gathers)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("8.8.8.8", 53))  # UDP: no packet is sent, this only picks a route
        address = str(s.getsockname()[0])
        if not address.startswith("127."):
            return address
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    raise RuntimeError("no non-loopback IPv4 address for Janus's ICE candidates")


def _lib_folder() -> Path:
    for folder in [
        *glob.glob("/usr/lib/*/janus"),
        "/usr/lib/janus",
        "/usr/local/lib/janus",
        "/opt/janus/lib/janus",
    ]:
        if (Path(folder) / "plugins" / "libjanus_videoroom.so").exists():
            return Path(folder)
    raise RuntimeError("Janus's VideoRoom plugin (libjanus_videoroom.so) was not found")


def _disable(folder: Path) -> str:
    return ",".join(sorted(p.name for p in folder.glob("libjanus_*.so") if p.name not in KEEP))


def write_config(directory: Path, port: int) -> Path:
    """Write janus.jcfg and the VideoRoom and HTTP configurations; returns janus.jcfg."""
    lib = _lib_folder()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{directory}"
    plugins_folder = "{lib / "plugins"}"
    transports_folder = "{lib / "transports"}"
    events_folder = "{lib / "events"}"
    loggers_folder = "{lib / "loggers"}"
    debug_level = 3
    server_name = "pairwise-bench"
    session_timeout = 0
    event_loops = {EVENT_LOOPS}
}}
certificates: {{
}}
media: {{
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{local_address()}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{_disable(lib / "plugins")}"
}}
transports: {{
    disable = "{_disable(lib / "transports")}"
}}
loggers: {{
    disable = "{_disable(lib / "loggers")}"
}}
events: {{
    broadcast = false
}}
"""
    )
    (directory / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{
}}
room-{ROOM_ID}: {{
    description = "bench"
    publishers = 4
    bitrate = 0
    fir_freq = 0
    audiocodec = "opus"
    videocodec = "vp8"
    record = false
}}
"""
    )
    (directory / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    ip = "127.0.0.1"
    port = {port}
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
cors: {{
}}
"""
    )
    return directory / "janus.jcfg"


def exec_janus(port: int, data_dir: Path) -> NoReturn:
    """Replace this process with Janus (so the harness measures Janus's own pid)."""
    directory = data_dir / "janus"
    config = write_config(directory, port)
    os.execvp("janus", ["janus", "-C", str(config), "-F", str(directory)])


# -- the load side ------------------------------------------------------------------


class JanusSession:
    """One Janus API session over HTTP: requests, plus a long poll that resolves the
    asynchronous plugin events by transaction."""

    def __init__(self, base: str) -> None:
        self.root = f"{base}/janus"
        self.url = ""
        self._http: Any = None
        self._poll: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def _post(self, url: str, message: dict[str, Any]) -> dict[str, Any]:
        async with self._http.post(url, json=message) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
        if data.get("janus") == "error":
            raise RuntimeError(f"Janus: {data['error']}")
        return data

    async def create(self) -> None:
        import aiohttp

        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        created = await self._post(self.root, {"janus": "create", "transaction": _tx()})
        self.url = f"{self.root}/{created['data']['id']}"
        self._poll = asyncio.ensure_future(self._long_poll())

    async def _long_poll(self) -> None:
        while True:
            async with self._http.get(f"{self.url}?maxev=16") as resp:
                data = await resp.json(content_type=None)
            for event in data if isinstance(data, list) else [data]:
                future = self._waiting.pop(event.get("transaction", ""), None)
                if future is not None and not future.done():
                    future.set_result(event)

    async def attach(self) -> str:
        data = await self._post(
            self.url, {"janus": "attach", "plugin": PLUGIN, "transaction": _tx()}
        )
        return f"{self.url}/{data['data']['id']}"

    async def message(
        self, handle: str, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a plugin request; returns the plugin's (possibly asynchronous) reply."""
        transaction = _tx()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        message: dict[str, Any] = {"janus": "message", "transaction": transaction, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            data = await self._post(handle, message)
            if data.get("janus") != "ack":
                reply = data
            else:
                reply = await asyncio.wait_for(future, 30)
        finally:
            self._waiting.pop(transaction, None)
        result = reply.get("plugindata", {}).get("data", {})
        if "error" in result:
            raise RuntimeError(f"Janus VideoRoom: {result['error']}")
        return reply

    async def disconnect(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        with contextlib.suppress(Exception):
            await self._post(self.url, {"janus": "destroy", "transaction": _tx()})
        await self._http.close()


def _tx() -> str:
    return secrets.token_hex(6)


async def connector(base: str, sockets: list[Any], feed: dict[str, Any] | None = None) -> Any:
    """`connect(identity, pc, publish)` for benchmarks.sfu; the session is appended to
    `sockets` so the caller's `disconnect()` destroys it. `feed`: more of a subscriber's
    stream request (e.g. a simulcast `substream`)."""
    from aiortc import RTCSessionDescription

    session = JanusSession(base)
    await session.create()
    sockets.append(session)

    async def connect(identity: str, pc: Any, publish: bool) -> None:
        handle = await session.attach()
        if publish:
            await session.message(
                handle,
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": ROOM_ID,
                    "id": PUBLISHER_ID,
                    "display": identity,
                },
            )
            await pc.setLocalDescription(await pc.createOffer())
            reply = await session.message(
                handle,
                {"request": "publish", "audio": True, "video": True},
                {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False},
            )
            await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "answer"))
            return
        reply = await session.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": ROOM_ID,
                "streams": [{"feed": PUBLISHER_ID, **(feed or {})}],
            },
        )
        await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await session.message(
            handle,
            {"request": "start"},
            {"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False},
        )

    return connect
