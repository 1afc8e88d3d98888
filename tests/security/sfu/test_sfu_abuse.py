"""A hostile or broken participant against the SFU (issue 19).

A signed-in participant can send anything over Socket.IO and anything over its media
connection. Each attack here runs against a room where ada publishes and bo watches,
with real aiortc peers through the real server: the server must stay up, bad input
gets a clear error and changes nothing, and ada's video keeps reaching bo (`Watch`
counts the frames bo gets against the frames ada sent meanwhile) while her chat
reaches him too.
"""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtpPacket,
)

from server.media.aiortc_internals.simulcast_receive import MAX_SSRCS
from server.media.peer import Peer
from server.media.publisher_cap import FLOOR
from server.media.sfu import Controls
from server.media.signaling import OFFER_BURST
from server.media.simulcast_choice import Estimate
from tests.media.conftest import MEDIA_SETTINGS, Join
from tests.media.simulcast_publisher import LayerStream, SimulcastPublisher, rids_in
from tests.media.support import (
    Encoded,
    MediaClient,
    hold_remb,
    send_remb,
    without_abs_send_time,
)
from tests.support.parts import ServerParts
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

ROOM = "pair-1"


class Watch:
    """How much of ada's video reaches bo while an attack runs."""

    def __init__(self, ada: MediaClient, bo: MediaClient) -> None:
        self.ada, self.bo = ada, bo

    def _received(self) -> int:
        return sum(r.frames for r in self.bo.of_kind("video"))

    async def during(self, attack: Awaitable[Any]) -> Any:
        """Run `attack`; then check that bo got (nearly) every frame ada sent meanwhile
        and that chat still flows. Returns what the attack returned."""
        sent = self.ada.tracks["video"].sent
        sent_at, received_at, started = len(sent), self._received(), time.monotonic()
        result = await attack
        sent_during = len(sent) - sent_at
        # the frames in flight when the attack ended arrive a moment later
        await eventually(
            lambda: self._received() - received_at >= 0.8 * sent_during,
            timeout=10,
            what=f"bo to get 80 % of the {sent_during} frames ada sent during the attack",
        )
        elapsed = time.monotonic() - started
        self.fps = sent_during / elapsed  # ada's real rate meanwhile: the loop kept up
        text = f"still here {time.monotonic()}"
        ack = await self.ada.socket.chat(text, f"c{time.monotonic_ns()}")
        assert "error" not in ack, ack
        await self.bo.socket.wait_for("chat", lambda d: d.get("text") == text)
        return result


async def _room(join: Join) -> tuple[MediaClient, MediaClient, Watch]:
    ada = await join("ada", role="mentor")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: any(r.frames > 15 for r in bo.of_kind("video")), timeout=20)
    return ada, bo, Watch(ada, bo)


def _video_receiver(person: MediaClient) -> tuple[RTCRtpReceiver, int]:
    """The person's receiver of a forwarded video track, and the SSRC it receives."""
    for transceiver in person.pc.getTransceivers():
        if transceiver.kind == "video" and transceiver.receiver.track is not None:
            sources = transceiver.receiver.getSynchronizationSources()
            if sources:
                return transceiver.receiver, sources[0].source
    raise AssertionError("no video received yet")


async def send_raw_rtcp(pc: RTCPeerConnection, data: bytes) -> None:
    """Any bytes as one SRTCP packet on the person's connection (the sender SSRC is
    all SRTCP itself needs)."""
    transceiver = pc.getTransceivers()[0]
    await transceiver.receiver.transport._send_rtp(data)


async def flood(count: int, per_second: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call `send(i)` `count` times at about `per_second` (in bursts of 10 ms)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    burst = max(1, int(per_second / 100))
    for i in range(0, count, burst):
        for j in range(i, min(count, i + burst)):
            await send(j)
        await asyncio.sleep(max(0.0, started + (i + burst) / per_second - loop.time()))


async def test_a_keyframe_request_flood_costs_the_publisher_one_a_second(join: Join) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    receiver, ssrc = _video_receiver(mallory)
    video = ada.tracks["video"]

    async def ask(i: int) -> None:
        fmt = RTCP_PSFB_PLI if i % 2 else RTCP_PSFB_FIR
        fci = struct.pack("!LBBH", ssrc, i & 0xFF, 0, 0) if fmt == RTCP_PSFB_FIR else b""
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=ssrc, fci=fci))

    asked_at, started = video.keyframe_requests, time.monotonic()
    await watch.during(flood(3000, 1000, ask))  # PLI and FIR, 1,000 a second for 3 s
    seconds = time.monotonic() - started
    asked = video.keyframe_requests - asked_at
    assert asked <= seconds + 2, (asked, seconds)


def _rtcp(packet_type: int, count: int, words: int, body: bytes, ssrc: int = 1) -> bytes:
    """An RTCP header that says what it likes, the sender SSRC, then `body`."""
    return struct.pack("!BBHL", 0x80 | count, packet_type, words, ssrc) + body


def garbage_rtcp(media_ssrc: int) -> list[bytes]:
    """RTCP that lies: truncated, wrong lengths, compound packets whose parts disagree."""
    m = struct.pack("!L", media_ssrc)
    return [
        _rtcp(201, 31, 1, b""),  # an RR announcing 31 reports, carrying none
        _rtcp(200, 0, 200, b"\x00" * 8),  # an SR whose length runs past the datagram
        _rtcp(205, 1, 0, m),  # a NACK of length 0 (shorter than its own header)
        _rtcp(205, 1, 3, m + b"\x00\x01"),  # a NACK whose FCI is cut in half
        _rtcp(206, 15, 2, b"\x00\x00\x00\x00"),  # a REMB with no FCI at all
        _rtcp(206, 4, 3, m + b"\x00"),  # a FIR whose entry is cut short
        _rtcp(203, 31, 1, b""),  # a BYE naming 31 sources, carrying one
        _rtcp(202, 5, 1, b""),  # SDES with 5 chunks, none there
        _rtcp(207, 0, 1, b""),  # XR, empty
        _rtcp(204, 0, 1, b""),  # APP without a name
        # a compound: a valid RR, then a PLI claiming 100 words
        _rtcp(201, 0, 1, b"") + _rtcp(206, 1, 100, m),
        # a compound: an RR, then bytes that are no RTCP at all
        _rtcp(201, 0, 1, b"") + b"\x00" * 40,
    ]


async def test_rtcp_garbage_changes_nothing_for_the_others(join: Join, server: Any) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", decode=False)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    _, ssrc = _video_receiver(mallory)
    packets = garbage_rtcp(ssrc)

    async def send(i: int) -> None:
        await send_raw_rtcp(mallory.pc, packets[i % len(packets)])

    await watch.during(flood(2000, 1000, send))
    # mallory's own connection still works: she still gets ada's video
    got = sum(r.frames for r in mallory.of_kind("video"))
    await eventually(lambda: sum(r.frames for r in mallory.of_kind("video")) > got + 10)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None and peer.state == "connected"


class Caps:
    """Every cap the SFU asks ada's camera for (publisher_cap.py), as it sends it."""

    def __init__(self, server: Any) -> None:
        media = ServerParts(server.app).sfu.rooms[ROOM]
        self.publication = media.publications[("ada", "video")]
        self.values: list[float | None] = []
        ask = self.publication.ask_bitrate
        assert ask is not None

        def recorded(bitrate: float | None) -> bool:
            self.values.append(bitrate)
            return ask(bitrate)

        self.publication.ask_bitrate = recorded


async def test_a_remb_of_zero_or_ten_gigabits_keeps_the_publisher_cap_in_its_bounds(
    join: Join, server: Any
) -> None:
    ada = await join("ada", role="mentor")
    bo = await join("bo", publish=False, decode=False, munge_answer=without_abs_send_time)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 15 for r in bo.of_kind("video")), timeout=20)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    watch = Watch(ada, bo)
    asked = Caps(server)
    keep_bo = asyncio.create_task(hold_remb(bo, 5_000_000, 60))  # bo's link is fine
    try:
        # mallory says she can take nothing, 1,000 times a second: ada is asked for the
        # floor, never less, and bo still gets her video
        at = len(asked.values)

        async def nothing(i: int) -> None:
            send_remb(mallory, 0)

        await watch.during(flood(3000, 1000, nothing))
        await eventually(lambda: asked.publication.cap_sent is not None, timeout=10)
        capped = [v for v in asked.values[at:] if v is not None]
        assert capped and min(capped) >= FLOOR, capped

        # then she claims 10 Gbit/s while bo can take only 10 kbit/s: the cap stays
        # where bo needs it (the least subscriber), whatever she says
        keep_bo.cancel()
        keep_bo = asyncio.create_task(hold_remb(bo, 10_000, 60))
        lie = asyncio.create_task(hold_remb(mallory, 10_000_000_000, 60))
        try:
            await asyncio.sleep(3)  # bo's low estimate settles (publisher_cap.SETTLE_SECONDS)
            at = len(asked.values)
            await asyncio.sleep(2)  # mallory's lie has had 20 chances to lift the cap
            assert asked.publication.cap_sent == FLOOR, asked.values[at:]
            assert all(v == FLOOR for v in asked.values[at:]), asked.values[at:]
        finally:
            lie.cancel()
    finally:
        keep_bo.cancel()


async def test_a_remb_flood_keeps_the_estimate_small(join: Join, server: Any) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", publish=False, decode=False, munge_answer=without_abs_send_time)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None

    async def estimate(i: int) -> None:
        send_remb(mallory, 200_000 + i)

    await watch.during(flood(4000, 2000, estimate))
    marker = 262_143  # the last word (a flood may lose some on a loaded machine)

    async def marked() -> bool:
        send_remb(mallory, marker)
        await asyncio.sleep(0.1)
        return peer.remb.value == marker

    await eventually(marked)
    # the newest value is the estimate, and the history the SFU scans on each REMB
    # holds one entry per 50 ms of its 3 s window, not one per REMB
    assert len(peer.remb.history) <= Estimate.WINDOW / Estimate.FOLD + 2, len(peer.remb.history)
    assert peer.remb.value == marker


def _layers(rids: list[str], frames: list[list[Encoded]]) -> list[LayerStream]:
    """Streams for `rids`; only the first three send (a browser's three encodings), and
    none whose RID a one-byte header extension cannot carry."""
    streams = [LayerStream(rid, frames[min(i, 2)]) for i, rid in enumerate(rids)]
    for i, stream in enumerate(streams):
        stream.stopped = i >= 3 or len(stream.rid) > 16
    return streams


def _mallorys_video(bo: MediaClient) -> int:
    return sum(r.frames for r in bo.of_kind("video") if _owner(bo, r) == "mallory")


def _owner(person: MediaClient, received: Any) -> str | None:
    for offer in reversed(person.offers):
        info = offer.get("tracks", {}).get(received.mid)
        if info is not None:
            return str(info.get("identity"))
    return None


@pytest.mark.parametrize(
    "rids, taken",
    [
        ([f"r{i}" for i in range(20)], ["r0", "r1", "r2", "r3"]),
        (["q", "q", "h", "f"], ["q", "h", "f"]),
        (["q", "x" * 5000, "h", "y" * 17, "f"], ["q", "h", "f"]),
        (["q", "h;f", "f"], ["q", "f"]),
    ],
    ids=["20-rids", "duplicate-rids", "huge-rids", "rid-with-separator"],
)
async def test_spoofed_simulcast_rids_are_answered_sanely(
    join: Join, layer_frames: list[list[Encoded]], rids: list[str], taken: list[str]
) -> None:
    # mallory publishes first (a simulcast publisher joining a room where someone
    # already publishes is a defect of its own: test_sfu_abuse_routed.py)
    mallory = await join("mallory", connect=False, video=[])
    publisher = SimulcastPublisher(mallory, layer_frames)
    publisher.layers = _layers(rids, layer_frames)
    try:
        await publisher.connect()
        answer = publisher.answer_lines()
        video = answer[next(i for i, line in enumerate(answer) if line.startswith("m=video")) :]
        assert rids_in(video) == taken
        assert f"a=simulcast:recv {';'.join(taken)}" in video
        ada, bo, watch = await _room(join)
        await watch.during(eventually(lambda: _mallorys_video(bo) > 10, timeout=20))
    finally:
        await publisher.close()


async def test_rtp_for_a_rid_never_offered_is_dropped(
    join: Join, layer_frames: list[list[Encoded]], caplog: pytest.LogCaptureFixture
) -> None:
    mallory = await join("mallory", connect=False, video=[])
    publisher = SimulcastPublisher(mallory, layer_frames)
    try:
        await publisher.connect()
        ada, bo, watch = await _room(join)
        await eventually(lambda: _mallorys_video(bo) > 10, timeout=20)
        # the top layer goes on under a new SSRC and a RID the offer never named (as
        # long as the header extension allows)
        sent = publisher.layers[2] = LayerStream("z" * 16, layer_frames[2])
        got = _mallorys_video(bo)
        with caplog.at_level("ERROR"):
            await watch.during(eventually(lambda: sent.sent > 30, timeout=20))
        await eventually(lambda: _mallorys_video(bo) > got + 20)
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.records
    finally:
        await publisher.close()


async def test_rtp_under_ever_new_ssrcs_grows_nothing_and_the_video_goes_on(
    join: Join, server: Any
) -> None:
    """Mallory sends video packets each under a new random SSRC (her payload type, so
    the SFU's router would learn each: aiortc learns an undeclared SSRC whose payload
    type one receiver has). Before the limit her connection's SSRC table, her receivers'
    statistics (a report block each in every receiver report) and source entries grew
    by one per packet, without end. The SFU learns at most `MAX_SSRCS` a connection
    (simulcast_receive.py); ada's video keeps reaching bo, and mallory's own too."""
    ada, bo, watch = await _room(join)
    mallory = await join("mallory")
    await eventually(lambda: _mallorys_video(bo) > 10, timeout=20)
    peer = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    assert peer is not None
    video = next(t for t in mallory.pc.getTransceivers() if t.kind == "video")
    payload_type = video._codecs[0].payloadType  # what she sends her camera as
    transport = video.sender.transport
    ssrcs = random.Random(7)

    async def packet(i: int) -> None:
        rtp = RtpPacket(payload_type=payload_type, marker=1, sequence_number=i & 0xFFFF)
        rtp.ssrc, rtp.timestamp = ssrcs.getrandbits(32), i * 3000
        rtp.payload = b"\x10" + bytes(200)  # a VP8 descriptor (S bit), then anything
        await transport._send_rtp(rtp.serialize())

    await watch.during(flood(3000, 1500, packet))
    table = peer.pc.getTransceivers()[0].receiver.transport._rtp_router.ssrc_table
    assert len(table) <= MAX_SSRCS, len(table)
    for transceiver in peer.pc.getTransceivers():
        receiver: Any = transceiver.receiver
        assert len(receiver._RTCRtpReceiver__remote_streams) <= MAX_SSRCS
        assert len(receiver._RTCRtpReceiver__active_ssrc) <= MAX_SSRCS
    got = _mallorys_video(bo)
    await eventually(lambda: _mallorys_video(bo) > got + 20, timeout=20)


async def test_one_long_datagram_from_a_stranger_ends_no_ones_media(
    join: Join, server: Any
) -> None:
    """A stranger (no keys: any socket) sends each participant's media port one
    datagram longer than SRTP's 1500 bytes, shaped as SRTCP and as SRTP. pylibsrtp
    refused it with a ValueError aiortc did not catch, which ended the connection's
    DTLS transport: ada's and bo's media closed (bo, who only watches, has no tapped
    receiver: aiortc's own path). Now it is dropped (aiortc_internals/datagrams.py):
    ada's video keeps reaching bo and both connections stay up."""
    ada, bo, watch = await _room(join)
    sfu = ServerParts(server.app).sfu
    peers = [sfu.peer(ROOM, name) for name in ("ada", "bo")]
    targets = []
    for peer in peers:
        assert peer is not None
        dtls = peer.pc.getTransceivers()[0].receiver.transport
        pair = dtls.transport._connection._nominated[1]
        targets.append((pair.local_candidate.host, pair.local_candidate.port))
    sent = ada.tracks["video"].sent

    async def attack() -> None:
        for host, port in targets:  # the pair ICE chose may be IPv6 (seen once in a run)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as stranger:
                for second in (200, 96):  # an SRTCP sender report's type, an RTP one's
                    stranger.sendto(bytes([0x80, second]) + bytes(1600), (host, port))
        before = len(sent)
        await eventually(lambda: len(sent) >= before + 45, timeout=10)  # 3 s of video

    await watch.during(attack())
    for peer in peers:
        assert peer is not None and peer.pc.connectionState == "connected"


def _with_sections(sdp: str, count: int) -> str:
    """The offer with `count` more (tiny) audio sections."""
    extra = "".join(
        f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:x{i}\r\na=recvonly\r\n"
        for i in range(count)
    )
    return sdp.rstrip("\r\n") + "\r\n" + extra


OVERSIZED: list[tuple[str, Callable[[str], str], str]] = [
    ("200 sections", lambda sdp: _with_sections(sdp, 200), "invalid_sdp"),
    ("65 sections in all", lambda sdp: _with_sections(sdp, 63), "invalid_sdp"),
    (
        "32 KiB and a bit",
        lambda sdp: sdp + "a=x\r\n" * ((32 * 1024 - len(sdp)) // 5 + 1),
        "invalid_payload",
    ),
]


async def test_an_oversized_offer_is_refused_and_changes_nothing(join: Join, server: Any) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory")
    await mallory.wait_connected()
    before = ServerParts(server.app).sfu.peer(ROOM, "mallory")
    await mallory.pc.setLocalDescription(await mallory.pc.createOffer())
    for name, change, code in OVERSIZED:  # one room for all: each must change nothing
        offer = change(mallory.pc.localDescription.sdp)

        async def attack(offer: str = offer) -> Any:
            return await mallory.socket.call("media_offer", {"sdp": offer, "type": "offer"})

        ack = await watch.during(attack())
        assert ack["error"]["code"] == code, (name, ack)
        assert ack["error"]["message"]
        assert ServerParts(server.app).sfu.peer(ROOM, "mallory") is before, name


async def test_a_second_screen_share_is_read_and_dropped(
    join: Join, server: Any, video_frames: list[Encoded]
) -> None:
    ada, bo, watch = await _room(join)
    mallory = await join("mallory", connect=False)
    mallory.publish_screen(video_frames)
    mallory.publish_screen(video_frames)  # a third video m-line: a second screen

    async def attack() -> Any:
        await mallory.connect()
        await mallory.wait_sending()
        return await mallory.socket.call("media_control", {"screen": True})

    assert "error" not in await watch.during(attack())
    media = ServerParts(server.app).sfu.rooms[ROOM]
    assert sorted(p.key for p in media.publications_of("mallory")) == ["audio", "screen", "video"]
    await eventually(lambda: sum(_owner(bo, r) == "mallory" for r in bo.received) == 3)
    offered = bo.offers[-1]["tracks"].values()
    assert sorted(t["source"] for t in offered if t["identity"] == "mallory") == [
        "camera",
        "microphone",
        "screen",
    ]


ABSURD_VIEWS: list[dict[str, Any]] = [
    {"views": [{"identity": "ada", "width": -1, "height": 100}]},
    {"views": [{"identity": "ada", "width": 100, "height": 1_000_000_000}]},
    {"views": [{"identity": "ada", "width": 1e9, "height": 100}]},
    {"views": [{"identity": "ada", "width": "640", "height": "480"}]},
    {"views": [{"identity": "ada", "width": 640, "height": 480, "source": "window"}]},
    {"views": [{"identity": "", "width": 640, "height": 480}]},
    {"views": [{"identity": "ada", "width": 640, "height": 480}] * 65},
    {"views": {"identity": "ada"}},
    {"views": [{"identity": "ada", "width": 640, "height": 480, "ssrc": 1}]},
    {"views": None},
]


async def test_absurd_view_sizes_are_refused(join: Join, server: Any) -> None:
    ada, bo, watch = await _room(join)
    peer = ServerParts(server.app).sfu.peer(ROOM, "bo")
    assert peer is not None
    tracks = list(peer.outgoing.values())
    views = [o.track.view for o in tracks]
    for payload in ABSURD_VIEWS:  # one room for all: each must change nothing
        ack = await watch.during(bo.socket.call("media_view", payload))
        assert ack["error"]["code"] == "invalid_payload", (payload, ack)
        assert ack["error"]["message"]
        assert [o.track.view for o in tracks] == views, payload


async def test_views_and_controls_reach_only_your_own_tracks(join: Join, server: Any) -> None:
    ada, bo, watch = await _room(join)
    other = await join("eve", room="pair-2")  # someone in another room
    await other.wait_connected()
    mallory = await join("mallory", publish=False, decode=False)
    await eventually(lambda: any(r.frames > 5 for r in mallory.of_kind("video")), timeout=20)
    sfu = ServerParts(server.app).sfu

    async def attack() -> list[Any]:
        return [
            # a view naming another room's participant matches nothing
            await mallory.socket.call(
                "media_view", {"views": [{"identity": "eve", "width": 1, "height": 1}]}
            ),
            # there is no way to name someone else's track in media_control
            await mallory.socket.call("media_control", {"identity": "ada", "video": False}),
            await mallory.socket.call("media_control", {"video": False, "audio": False}),
        ]

    view, theirs, own = await watch.during(attack())
    assert view == {"matched": 0}
    assert theirs["error"]["code"] == "invalid_payload", theirs
    assert own == {"audio": False, "video": False, "receive_video": True, "screen": False}
    assert sfu.rooms[ROOM].controls.get("ada") in (None, Controls())
    assert sfu.rooms["pair-2"].controls.get("eve") in (None, Controls())
    # and the room's media stats are for its managers, not its participants
    status, _, _ = await _get(server, "/api/v1/rooms/pair-2/stats", mallory.socket.token)
    assert status in (401, 403), status


async def _get(server: Any, path: str, token: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http:
        url = str(server.make_url(path))
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.text(), resp.headers


# mallory's offers are answered but never completed (her own connection is the first):
# the last one taken would fail its ICE timeout (4 s) while the test reads the room.
@pytest.mark.parametrize(
    "media_settings",
    [{**MEDIA_SETTINGS, "media_ice_timeout_seconds": 120.0, "media_answer_timeout_seconds": 120.0}],
)
async def test_a_renegotiation_storm_is_rate_limited_and_leaves_one_connection(
    join: Join, server: Any
) -> None:
    began = time.monotonic()  # Peers made before (earlier tests' servers) are not counted
    ada, bo, watch = await _room(join)
    mallory = await join("mallory")
    await mallory.wait_connected()
    await mallory.pc.setLocalDescription(await mallory.pc.createOffer())
    offer = {"sdp": mallory.pc.localDescription.sdp, "type": "offer"}

    async def storm() -> list[Any]:
        acks = []
        for _ in range(4):  # 50 a second for 2 s, each half second's at once
            calls = [mallory.socket.call("media_offer", offer, timeout=60) for _ in range(25)]
            acks += await asyncio.gather(*calls)
            await asyncio.sleep(0.5)
        return acks

    acks = await watch.during(storm())
    taken = [a for a in acks if "sdp" in a]
    codes = [a["error"]["code"] for a in acks if "error" in a]
    # over the limit: refused; within it, an offer overlapping a later one of the same
    # participant's loses to that one (offer_superseded) rather than opening a connection
    assert set(codes) <= {"rate_limited", "offer_superseded"}, codes
    assert codes.count("rate_limited") >= len(acks) - (OFFER_BURST + 2), codes
    assert 1 <= len(taken) <= OFFER_BURST + 2, len(taken)  # the burst, and 0.5 a second
    sfu = ServerParts(server.app).sfu
    assert sorted(sfu.rooms[ROOM].peers) == ["ada", "bo", "mallory"]
    registry = ServerParts(server.app).registry
    await eventually(
        lambda: registry.get_sample_value("pairwise_sfu_peers") == 3,
        what=f"3 peers counted, not {registry.get_sample_value('pairwise_sfu_peers')}",
    )
    # the storm's connections are all closed: only the last one is open
    gc.collect()
    open_ = [
        p
        for p in gc.get_objects()
        if isinstance(p, Peer) and not p.closed and p.created_at >= began
    ]
    assert sorted(p.identity for p in open_) == ["ada", "bo", "mallory"], open_
