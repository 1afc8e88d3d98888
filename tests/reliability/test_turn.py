"""Media through TURN: coturn with REST-style shared-secret credentials from `media_config`.

coturn (Debian's `turnserver`) is started by the test on the host end of a test veth pair
(aioice and Chromium ignore loopback), relaying only to 10.203.0.0/16 addresses, so a
relayed connection can only reach the SFU through its candidate on that veth address.
Participants are forced to relay-only ICE, so a connection that forms went through coturn.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from playwright.async_api import expect

from server.app import create_app
from server.config import Settings
from server.media.ice import turn_credentials
from tests.e2e.conftest import OpenPage, RoomPage, launcher, open_page  # noqa: F401 - fixtures
from tests.media.support import MediaClient, encode_audio, encode_video
from tests.support import netns
from tests.support.participants import SocketParticipant, issue_token
from tests.support.services import free_port, require_program

pytestmark = [pytest.mark.slow]

SECRET = "turn-secret-for-tests-0123456789"


@dataclass
class Turn:
    ip: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"turn:{self.ip}:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_logged(self, text: str, timeout: float = 10) -> None:
        """coturn writes its log lines a little after the fact."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, (
                f"coturn never logged {text!r}:\n{self.log()[-3000:]}"
            )
            await asyncio.sleep(0.2)


def stun_answers(ip: str, port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(bytes(request), (ip, port))
            return stun.parse_message(s.recv(2048)).transaction_id == request.transaction_id
        except OSError:
            return False


@pytest.fixture
def test_host() -> Iterator[netns.TestHost]:
    host = netns.create_test_host()
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture
def turn(tmp_path: Path, test_host: netns.TestHost) -> Iterator[Turn]:
    """coturn on the veth host address: shared secret, UDP only, a fresh state dir."""
    program = require_program("turnserver", "/usr/bin/turnserver")
    state = tmp_path / "coturn"
    state.mkdir()
    port = free_port()
    relay_low = random.randrange(50000, 60000, 100)
    turn = Turn(test_host.host_ip, port, state / "turn.log")
    proc = subprocess.Popen(
        [
            program,
            "-n",  # no configuration file: everything is on this line
            f"--listening-ip={turn.ip}",
            f"--listening-port={port}",
            f"--relay-ip={turn.ip}",
            f"--min-port={relay_low}",
            f"--max-port={relay_low + 99}",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=pairwise.test",
            "--no-tls",
            "--no-dtls",
            "--no-tcp-relay",
            "--no-cli",
            "--no-multicast-peers",
            # Relay only to the test's own veth addresses, never anywhere else.
            "--denied-peer-ip=0.0.0.0-255.255.255.255",
            "--allowed-peer-ip=10.203.0.0-10.203.255.255",
            f"--userdb={state / 'turndb'}",
            f"--pidfile={state / 'turnserver.pid'}",
            f"--log-file={turn.log_path}",
            "--simple-log",
            "--no-stdout-log",
            "--verbose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not stun_answers(turn.ip, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"coturn did not start:\n{turn.log()}")
            time.sleep(0.1)
        yield turn
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def turn_settings(make_settings: Callable[..., Settings], turn: Turn) -> Settings:
    return make_settings(
        ice_servers=[turn.url],
        turn_secret=SECRET,
        media_silence_seconds=3.0,
        media_ice_timeout_seconds=15.0,
    )


@pytest.fixture
async def base_url(aiohttp_server: Any, turn_settings: Settings) -> str:
    server = await aiohttp_server(create_app(turn_settings))
    return str(server.make_url("")).rstrip("/")


def relay_configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


@contextlib.asynccontextmanager
async def relayed_publisher(
    base_url: str, identity: str, ice_servers: list[dict[str, Any]] | None = None
) -> AsyncIterator[MediaClient]:
    """An aiortc participant publishing audio+video with relay-only ICE; `ice_servers`
    default to what `media_config` hands out."""
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", identity)
    socket_ = await SocketParticipant(base_url, token).connect()
    await socket_.join(media_mode="video")
    config = await socket_.call("media_config", {})
    client = MediaClient(socket_, decode=False)
    await client.pc.close()
    client.pc = RTCPeerConnection(relay_configuration(ice_servers or config["ice_servers"]))
    client.publish(encode_video(45), encode_audio(50))
    try:
        yield client
    finally:
        await client.close()


async def published_video_frames(base_url: str, identity: str) -> int:
    import aiohttp

    from tests.support.process import ADMIN_KEY

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base_url}/api/v1/rooms/pair-1/stats",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as resp,
    ):
        body = await resp.json()
    person = next((p for p in body.get("participants", []) if p["identity"] == identity), None)
    return sum(p["frames"] for p in person["published"] if p["kind"] == "video") if person else 0


async def test_media_config_credentials_are_accepted_by_coturn(base_url: str, turn: Turn) -> None:
    async with relayed_publisher(base_url, "ada") as ada:
        config = await ada.socket.call("media_config", {})
        (server,) = config["ice_servers"]
        assert server["urls"] == [turn.url]
        expiry, identity = server["username"].split(":")
        assert identity == "ada" and int(expiry) > time.time()

        await ada.connect()  # relay-only ICE: this can only connect through coturn
        await ada.wait_connected(timeout=20)
        candidates = ada.pc.localDescription.sdp
        assert " typ relay" in candidates and " typ host" not in candidates
        deadline = time.monotonic() + 15
        while await published_video_frames(base_url, "ada") < 20:
            assert time.monotonic() < deadline, "no video reached the SFU through TURN"
            await asyncio.sleep(0.5)
    # (media_config hands out a fresh expiry each time: match the identity part)
    await turn.wait_logged(":ada>: incoming packet ALLOCATE processed, success")
    await turn.wait_logged("CHANNEL_BIND processed, success")


async def test_a_wrong_turn_credential_is_refused(base_url: str, turn: Turn) -> None:
    username, _ = turn_credentials(SECRET, "mallory", 600)
    _, forged = turn_credentials("not-the-secret", "mallory", 600)
    stale_user, stale = turn_credentials(SECRET, "mallory", -60)  # expired a minute ago
    for user, password in ((username, forged), (stale_user, stale)):
        servers = [{"urls": [turn.url], "username": user, "credential": password}]
        async with relayed_publisher(base_url, "mallory", servers) as mallory:
            # coturn refuses the allocation, so relay-only ICE gathers nothing to offer.
            await mallory.pc.setLocalDescription(await mallory.pc.createOffer())
            assert " typ relay" not in mallory.pc.localDescription.sdp
        await turn.wait_logged(f"user <{user}>: incoming packet message processed, error 401")


SELECTED_PAIR = """async () => {
    const pc = window.pairwiseDebug.room.media.pc;
    if (!pc) return null;
    const stats = new Map();
    (await pc.getStats()).forEach((s) => stats.set(s.id, s));
    for (const s of stats.values()) {
        if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
        const pair = stats.get(s.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId);
        const remote = stats.get(pair.remoteCandidateId);
        return {local: local.candidateType, remote: remote.candidateType,
                localAddress: local.address, relayProtocol: local.relayProtocol || null};
    }
    return null;
}"""

FRAMES_DECODED = """async () => {
    const pc = window.pairwiseDebug.room.media.pc;
    let frames = 0;
    if (pc) (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    });
    return frames;
}"""


async def frames_grow(person: RoomPage, seconds: float = 15) -> int:
    first = await person.evaluate(FRAMES_DECODED)
    deadline = time.monotonic() + seconds
    while True:
        await asyncio.sleep(1)
        grown = await person.evaluate(FRAMES_DECODED) - first
        if grown > 10 or time.monotonic() > deadline:
            return int(grown)


@pytest.mark.browser
async def test_a_browser_forced_to_relay_connects_through_coturn(
    open_page: OpenPage,  # noqa: F811 - the fixture imported above
    turn: Turn,
) -> None:
    ada = await open_page("ada", role="mentor", diag=("force-relay", "debug-handle"))
    bo = await open_page("bo", diag=("debug-handle",))
    await expect(bo.badge("ada")).to_have_text("Video", timeout=20_000)
    await expect(ada.badge("ada")).to_have_text("Video")

    selected = None
    deadline = time.monotonic() + 15
    while selected is None and time.monotonic() < deadline:
        selected = await ada.evaluate(SELECTED_PAIR)
        await asyncio.sleep(0.5)
    assert selected is not None, await ada.evaluate("() => window.pairwiseDebug.state()")
    assert selected["local"] == "relay" and selected["localAddress"] == turn.ip, selected
    assert selected["relayProtocol"] == "udp", selected
    grown = await frames_grow(bo)
    assert grown > 10, f"bo decoded {grown} frames of ada's relayed video"
    await turn.wait_logged("incoming packet ALLOCATE processed, success")
