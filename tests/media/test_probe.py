"""The pre-join media check (`media_probe`, server/media/probe.py), with a real aiortc
client through the real server: a data-channel-only connection that echoes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from server.media import probe
from server.media.signaling import OFFER_BURST
from tests.media.support import client_configuration
from tests.support.participants import SocketParticipant, issue_token
from tests.support.parts import ServerParts


@pytest.fixture
async def socket(base_url: str) -> AsyncIterator[SocketParticipant]:
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "ada", None, "mentee")
    participant = await SocketParticipant(base_url, token).connect()  # not joined
    yield participant
    await participant.close()


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[RTCPeerConnection]:
    """The PeerConnections the server makes for probes (the real class, noted as made)."""
    made: list[RTCPeerConnection] = []

    class Noted(RTCPeerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(probe, "RTCPeerConnection", Noted)
    return made


async def closed(pc: RTCPeerConnection, timeout: float = 10) -> None:
    """Wait until `pc` is closed."""
    done = asyncio.get_running_loop().create_future()

    def check() -> None:
        if pc.connectionState == "closed" and not done.done():
            done.set_result(None)

    pc.on("connectionstatechange", check)
    check()
    await asyncio.wait_for(done, timeout)


def probes(server: Any) -> probe.MediaProbes:
    return ServerParts(server.app).sfu.probes


async def offer_with_channel() -> tuple[RTCPeerConnection, Any]:
    pc = RTCPeerConnection(client_configuration())
    channel = pc.createDataChannel("probe")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, channel


async def test_a_probe_connects_and_echoes_before_joining(
    socket: SocketParticipant, server: Any
) -> None:
    pc, channel = await offer_with_channel()
    echoed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    channel.on("open", lambda: channel.send("ping 1"))
    channel.on("message", lambda message: echoed.done() or echoed.set_result(message))
    try:
        ack = await socket.call("media_probe", {"sdp": pc.localDescription.sdp, "type": "offer"})
        assert "error" not in ack, ack
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        assert await asyncio.wait_for(echoed, 15) == "ping 1"
        assert len(probes(server)) == 1
        assert await socket.call("media_probe_close", {}) == {"closed": True}
        assert len(probes(server)) == 0
    finally:
        await pc.close()


@pytest.mark.parametrize(
    "sdp",
    ["garbage", "v=0\r\nnot an sdp", None],
    ids=["garbage", "broken", "audio-section"],
)
async def test_a_probe_offer_that_is_not_a_data_channel_is_refused(
    socket: SocketParticipant, server: Any, sdp: str | None
) -> None:
    if sdp is None:  # a real offer, but with media: probes carry none
        pc = RTCPeerConnection(client_configuration())
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
    ack = await socket.call("media_probe", {"sdp": sdp, "type": "offer"})
    assert ack["error"]["code"] == "invalid_sdp", ack
    assert len(probes(server)) == 0


async def test_a_probe_ends_when_its_socket_goes_and_after_its_time(
    socket: SocketParticipant,
    server: Any,
    base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    answered: list[RTCPeerConnection],
) -> None:
    pc, _ = await offer_with_channel()
    try:
        ack = await socket.call("media_probe", {"sdp": pc.localDescription.sdp, "type": "offer"})
        assert "sdp" in ack, ack
        assert len(probes(server)) == 1
        await socket.close()
        await closed(answered[-1])  # else: the probe outlived its socket
        assert len(probes(server)) == 0
    finally:
        await pc.close()

    monkeypatch.setattr(probe, "PROBE_SECONDS", 0.3)
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "bo", None, "mentee")
    other = await SocketParticipant(base_url, token).connect()
    pc, _ = await offer_with_channel()
    try:
        ack = await other.call("media_probe", {"sdp": pc.localDescription.sdp, "type": "offer"})
        assert "sdp" in ack, ack
        assert len(probes(server)) == 1
        await closed(answered[-1])  # else: the probe outlived PROBE_SECONDS
        assert len(probes(server)) == 0
    finally:
        await pc.close()
        await other.close()


async def test_one_token_cannot_take_every_probe_slot(
    socket: SocketParticipant, server: Any, base_url: str
) -> None:
    """A token opening sockets in a loop gets `rate_limited` past 2 checks at once (the
    documented cap); its own slots come back when a check closes, and another token still
    gets a probe meanwhile. Before the cap one token could take all 64 slots."""
    cap = 2
    token = await asyncio.to_thread(issue_token, base_url, "pair-1", "ada", None, "mentee")
    sockets = [socket] + [await SocketParticipant(base_url, token).connect() for _ in range(cap)]
    bo_token = await asyncio.to_thread(issue_token, base_url, "pair-1", "bo", None, "mentee")
    bo = await SocketParticipant(base_url, bo_token).connect()
    pcs: list[RTCPeerConnection] = []

    async def ask(who: SocketParticipant) -> Any:
        pc, _ = await offer_with_channel()
        pcs.append(pc)
        return await who.call("media_probe", {"sdp": pc.localDescription.sdp, "type": "offer"})

    try:
        for who in sockets[:-1]:
            assert "sdp" in await ask(who)
        refused = await ask(sockets[-1])
        assert refused["error"]["code"] == "rate_limited", refused
        assert len(probes(server)) == cap  # the refusal took nothing
        assert "sdp" in await ask(bo), "another token must still get a probe"
        # The same socket probing again replaces its own check: never refused.
        assert "sdp" in await ask(sockets[0])
        # A closed check frees its slot for the same token.
        assert await sockets[0].call("media_probe_close", {}) == {"closed": True}
        assert "sdp" in await ask(sockets[-1])
    finally:
        for pc in pcs:
            await pc.close()
        for who in sockets[1:] + [bo]:
            await who.close()


async def test_two_racing_probes_on_one_socket_leave_one_connection(
    socket: SocketParticipant, server: Any, answered: list[RTCPeerConnection]
) -> None:
    """Two `media_probe` events sent at once from one socket: the newer one stands and the
    other's PeerConnection is closed. Before, both were answered and the first was
    forgotten while still open: nothing ever closed it, not even its timer."""
    (first, _), (second, _) = [await offer_with_channel() for _ in range(2)]
    try:
        acks = await asyncio.gather(
            *(
                socket.call("media_probe", {"sdp": pc.localDescription.sdp, "type": "offer"})
                for pc in (first, second)
            )
        )
        assert len(answered) == 2, acks
        assert len(probes(server)) == 1
        still_open = [pc for pc in answered if pc.connectionState != "closed"]
        assert len(still_open) == 1, [pc.connectionState for pc in answered]
        codes = sorted(a["error"]["code"] if "error" in a else "answered" for a in acks)
        assert codes == ["answered", "conflict"], acks
        assert await socket.call("media_probe_close", {}) == {"closed": True}
        assert all(pc.connectionState == "closed" for pc in answered)
    finally:
        await first.close()
        await second.close()


async def test_probes_share_the_new_connection_limit(
    socket: SocketParticipant, server: Any, answered: list[RTCPeerConnection]
) -> None:
    """Each probe costs the SFU a PeerConnection (a DTLS certificate, ICE gathering), as
    an offer does: a socket probing in a loop gets the offers' burst, then is refused."""
    pc, _ = await offer_with_channel()
    offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
    await pc.close()
    acks = [await socket.call("media_probe", offer) for _ in range(OFFER_BURST + 5)]
    codes = [a["error"]["code"] if "error" in a else "answered" for a in acks]
    assert codes[:OFFER_BURST] == ["answered"] * OFFER_BURST, codes
    assert codes.count("rate_limited") >= 4, codes  # 0.5 a second come back meanwhile
    assert len(answered) == codes.count("answered")
    assert len(probes(server)) == 1  # each probe replaced the one before
