"""The media events over Socket.IO: hostile SDP, controls, reconnect, stats, ICE servers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import aiohttp
import av
import pytest

from server.config import Settings
from tests.conftest import ADMIN
from tests.media.conftest import Join
from tests.media.support import Received, without_codec
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

VALID_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("media_offer", {"sdp": "hello", "type": "offer"}, "invalid_sdp"),
        ("media_offer", {"sdp": "v=0\r\nthis is not sdp\r\n", "type": "offer"}, "invalid_sdp"),
        (
            "media_offer",
            {"sdp": VALID_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"},
            "invalid_sdp",
        ),  # no ICE credentials, no codecs
        ("media_offer", {"sdp": VALID_HEAD, "type": "offer"}, "invalid_sdp"),  # no media
        (
            "media_offer",
            {"sdp": "v=0\r\n" + "a=x\r\n" * 9000, "type": "offer"},
            "invalid_payload",
        ),  # 45 KB
        ("media_offer", {"sdp": 5, "type": "offer"}, "invalid_payload"),
        ("media_offer", {"sdp": ["v=0"], "type": "offer"}, "invalid_payload"),
        ("media_offer", ["not", "a", "map"], "invalid_payload"),
        ("media_offer", {"sdp": VALID_HEAD, "type": "answer"}, "invalid_payload"),
        ("media_offer", {"sdp": VALID_HEAD}, "invalid_payload"),
        (
            "media_answer",
            {"sdp": VALID_HEAD, "type": "answer", "revision": 1},
            "no_media_connection",
        ),
        ("media_answer", {"sdp": VALID_HEAD, "type": "offer", "revision": 1}, "invalid_payload"),
        ("media_control", {"audio": "yes"}, "invalid_payload"),
    ],
)
async def test_malformed_or_hostile_sdp_gets_an_error_ack(
    join: Join, event: str, payload: Any, code: str
) -> None:
    mallory = await join("mallory", connect=False)
    ack = await mallory.socket.call(event, payload)
    assert ack["error"]["code"] == code, ack
    assert ack["error"]["message"]
    # Nothing broke: a real participant still connects and gets media.
    ada = await join("ada")
    await ada.wait_connected()


async def test_unexpected_answer_and_many_candidates_are_refused(join: Join) -> None:
    ada = await join("ada")
    ack = await ada.socket.call(
        "media_answer", {"sdp": ada.pc.localDescription.sdp, "type": "answer", "revision": 99}
    )
    assert ack["error"]["code"] == "no_offer_pending"
    offer = ada.pc.localDescription.sdp
    flood = "".join(
        f"a=candidate:{i} 1 udp 1 10.0.{i // 250}.{i % 250} 9 typ host\r\n" for i in range(60)
    )
    ack = await ada.socket.call("media_reconnect", {"sdp": offer + flood, "type": "offer"})
    assert ack["error"]["code"] == "invalid_sdp" and "candidates" in ack["error"]["message"]
    no_codecs = without_codec(without_codec(without_codec(offer, "OPUS"), "VP8"), "H264")
    for codec in ("G722", "PCMU", "PCMA", "RTX"):
        no_codecs = without_codec(no_codecs, codec)
    ack = await ada.socket.call("media_reconnect", {"sdp": no_codecs, "type": "offer"})
    assert ack["error"]["code"] == "invalid_sdp", ack
    await ada.wait_connected()  # the refused reconnect left the working connection alone


async def test_mdns_candidates_are_dropped_before_aiortc_sees_them(join: Join) -> None:
    from server.media.peer import sanitize_remote_sdp

    line = "a=candidate:1 1 udp 2113937151 4f1a2b3c-0000-4d4d-8e8e-123456789abc.local 5000 typ host"
    kept = "a=candidate:2 1 udp 2113937151 192.0.2.10 5000 typ host"
    clean = sanitize_remote_sdp(f"{VALID_HEAD}{line}\r\n{kept}\r\n")
    assert ".local" not in clean and kept in clean
    # And a browser-like offer full of .local candidates still connects.
    ada = await join("ada", connect=False)
    original = ada.pc.createOffer

    async def with_mdns() -> Any:
        offer = await original()
        offer.sdp = offer.sdp.replace("a=end-of-candidates", f"{line}\r\na=end-of-candidates")
        return offer

    ada.pc.createOffer = with_mdns  # type: ignore[method-assign]
    await ada.connect()
    await ada.wait_connected()


# What MediaClient.publish sends: Opus in 20 ms frames, video at 15 frames a second.
FRAMES_PER_SECOND = {"audio": 50, "video": 15}


async def grows(received: Received, by: int = 5) -> None:
    before = received.frames
    await eventually(lambda: received.frames > before + by, what=f"{received.kind} frames")


async def flows_alone(flowing: Received, stopped: Received) -> None:
    """`flowing` keeps arriving while `stopped` gets nothing. That nothing comes takes a
    bounded wait, measured in `flowing`'s own frames (0.2 s for frames already in flight,
    then 0.5 s in which `stopped` must not move): a loaded machine waits longer instead of
    proving less."""
    rate = FRAMES_PER_SECOND[flowing.kind]
    await grows(flowing, by=round(0.2 * rate))
    before = stopped.frames
    await grows(flowing, by=round(0.5 * rate))
    assert stopped.frames == before, f"{stopped.kind} still arrives"


async def test_controls_mute_camera_and_audio_only(join: Join) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 5 for r in bo.received))
    audio, video = bo.of_kind("audio")[0], bo.of_kind("video")[0]

    ack = await bo.socket.call("media_control", {"receive_video": False})
    assert ack == {"audio": True, "video": True, "receive_video": False, "screen": False}
    await flows_alone(audio, stopped=video)
    await bo.socket.call("media_control", {"receive_video": True})
    await grows(video)

    await ada.socket.call("media_control", {"audio": False})
    state = await bo.socket.wait_for("media_state", {"identity": "ada"})
    assert state["audio"] is False and state["video"] is True
    await flows_alone(video, stopped=audio)
    await ada.socket.call("media_control", {"audio": True, "video": False})
    await flows_alone(audio, stopped=video)
    # That a camera turned off is not taken for silence (no step down) is judged with a
    # moved clock in test_continuity.py::test_camera_off_never_steps_down_for_missing_video.

    observer = await join("olga", role="observer", publish=False, decode=False)
    denied = await observer.socket.call("media_control", {"video": True})
    assert denied["error"]["code"] == "forbidden"
    await eventually(lambda: len(observer.received) == 2)


async def test_reconnect_keeps_room_and_subscribers(join: Join) -> None:
    ada = await join("ada")
    bo = await join("bo", publish=False, decode=False)
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 5 for r in bo.received))
    tracks = list(bo.received)
    ack = await ada.reconnect(reason="network_changed")
    assert ack["type"] == "answer"
    await ada.wait_connected()
    counts = [r.frames for r in tracks]
    await eventually(lambda: all(r.frames > c + 10 for r, c in zip(tracks, counts, strict=True)))
    assert len(bo.received) == 2 and not any(r.ended.is_set() for r in tracks)
    decoder = av.CodecContext.create("libvpx", "r")
    video = bo.of_kind("video")[0].encoded
    assert sum(len(decoder.decode(av.Packet(data))) for data in video) == len(video)
    assert "id" in await ada.socket.chat("still here", "r1")


async def test_stats_api_and_metrics(join: Join, base_url: str) -> None:
    await join("ada")
    bo = await join("bo")
    await eventually(lambda: len(bo.received) == 2 and all(r.frames > 5 for r in bo.received))
    url = f"{base_url}/api/v1/rooms/pair-1/stats"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 401
        async with http.get(f"{base_url}/api/v1/rooms/nowhere/stats", headers=ADMIN) as resp:
            assert resp.status == 404

        async def measured() -> dict[str, Any] | None:
            """The participants once each has a rate and a round-trip time (the SFU samples
            them every 2 s; a REST view has no event to wait on)."""
            async with http.get(url, headers=ADMIN) as resp:
                assert resp.status == 200
                body = await resp.json()
            people = {p["identity"]: p for p in body["participants"]}
            rated = (p["inbound_kbps"] > 0 and p["rtt_ms"] is not None for p in people.values())
            return people if all(rated) else None

        people = await eventually(measured, interval=0.25, what="rates and round-trip times")
        assert set(people) == {"ada", "bo"}
        for person in people.values():
            assert person["connection_state"] == "connected"
            assert person["forwarded_streams"] == 2 and person["transcoded_streams"] == 0
            assert person["packets_in"] > 0 and person["packets_out"] > 0
            assert person["inbound_kbps"] > 0 and person["rtt_ms"] is not None
            assert {t["kind"]: t["subscribers"] for t in person["published"]} == {
                "audio": 1,
                "video": 1,
            }
        async with http.get(f"{base_url}/metrics") as resp:
            metrics = await resp.text()
    assert "pairwise_sfu_forwarded_streams 4.0" in metrics
    assert "pairwise_sfu_transcoded_pairs 0.0" in metrics
    # A new subscriber asks the publisher for a keyframe: at once, or held back by the
    # per-publisher limit and sent when it allows ("coalesced"), when another request
    # (a loaded machine's stall) went just before.
    assert any(
        f'pairwise_sfu_keyframe_requests_total{{reason="{reason}"}}' in metrics
        for reason in ("new_subscriber", "coalesced")
    ), metrics


async def test_media_config_hands_out_settings_ice_servers(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    from server.app import create_app
    from tests.support.participants import SocketParticipant, issue_token

    settings = make_settings(
        ice_servers=["stun:stun.example.org:3478", "turn:turn.example.org:3478?transport=udp"],
        turn_secret="s3cret",
        turn_ttl_seconds=600,
    )
    server = await aiohttp_server(create_app(settings))
    url = str(server.make_url("")).rstrip("/")
    token = await asyncio.to_thread(issue_token, url, "pair-1", "ada")
    ada = await SocketParticipant(url, token).connect()
    try:
        await ada.join()
        config = await ada.call("media_config")
    finally:
        await ada.close()
    stun, turn = config["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp"]
    expiry, identity = turn["username"].split(":")
    assert identity == "ada" and int(expiry) > 0
    digest = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


async def test_media_config_carries_the_rooms_dial_in_number_and_pin(
    server: Any, base_url: str
) -> None:
    from server.media.signaling import MediaHandlers
    from server.phone.dial_in import DialIn
    from server.phone.pins import PinStore
    from tests.support.participants import SocketParticipant, issue_token
    from tests.support.parts import ServerParts

    # Wired the way app.py wires it when the phone gateway is on.
    services = ServerParts(server.app)
    pins = PinStore(services.database)
    MediaHandlers(
        services.signaling, services.media, dialin=DialIn(pins, "+49 30 1234 5678").for_room
    )
    pin = await pins.ensure_room_pin("pair-1")
    people = []
    for room in ("pair-1", "pair-2"):
        token = await asyncio.to_thread(issue_token, base_url, room, "ada")
        person = await SocketParticipant(base_url, token).connect()
        people.append(person)
        await person.join()
    try:
        with_pin = await people[0].call("media_config")
        without_pin = await people[1].call("media_config")
    finally:
        for person in people:
            await person.close()
    assert with_pin["dialin"] == {"number": "+49 30 1234 5678", "pin": pin}
    assert "dialin" not in without_pin and "ice_servers" in without_pin
