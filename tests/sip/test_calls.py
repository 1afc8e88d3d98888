"""Real sipp calls against the gateway on loopback: answer, audio, PINs, hang-ups."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone import g711, prompt
from server.phone.events import PhoneCallEnded, PhonePinRejected
from server.rooms.events import MediaModeChanged, ParticipantJoined, ParticipantLeft
from server.rooms.model import MediaMode
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually
from tests.sip.media import (
    ToneTrack,
    dominant_frequency,
    g711_packets,
    key_presses,
    key_tones,
    tone,
)

pytestmark = [pytest.mark.slow, pytest.mark.sip]

TONE_PACKETS = 50  # tone.ulaw: one second of PCMU, 160-byte (20 ms) packets


async def test_pin_in_request_uri_joins_the_room_and_every_frame_arrives(phone: Phone) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-1")
    (phone.workdir / "tone.ulaw").write_bytes(g711.encode("PCMU", tone(1000, 1.0)))

    call = phone.start_sipp("call_audio.xml", pin, hold_ms=1500)
    live = await phone.confirmed_call()
    room = await eventually(lambda: phone.registry.get("mentoring-1"))
    caller = await eventually(lambda: next(iter(room.participants.values()), None))
    assert caller.media_mode == MediaMode.PHONE
    assert caller.connection == live.call_id
    result = await call

    assert result.returncode == 0, result.errors
    ended = phone.gateway.ended_calls[-1]
    assert ended.stats.audio_frames_received == TONE_PACKETS
    assert ended.stats.packets_lost == 0
    assert ended.end_reason == "caller_hung_up"
    await phone.bus.drain()
    joined = phone.of_type(ParticipantJoined)
    assert [(e.room, e.media_mode) for e in joined] == [("mentoring-1", "phone")]
    assert joined[0].name == "sipp"  # the display name in sipp's From header
    assert [e.reason for e in phone.of_type(ParticipantLeft)] == ["left"]
    assert phone.of_type(PhoneCallEnded)[0].packets_received == TONE_PACKETS
    assert phone.registry.participant("mentoring-1", joined[0].identity) is None
    assert phone.metric("pairwise_phone_call_attempts_total", result="answered") == 1
    assert phone.metric("pairwise_phone_active_calls") == 0


async def test_room_audio_reaches_the_caller(phone: Phone, udp_peer: UdpPeer) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-2")
    phone.room_audio.publish_track("mentoring-2", "alice", ToneTrack(700))
    call = phone.start_sipp(
        "call_external_media.xml", pin, hold_ms=4000, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    # The caller's phone starts sending (silence): that is what the gateway answers to.
    for packet in g711_packets("PCMA", np.zeros(8000, dtype=np.int16), 8, ssrc=7):
        udp_peer.send(packet, live.local_rtp_port)

    heard: list[np.ndarray] = []
    for _ in range(300):  # up to 9 s of 30 ms packets: the "joining" prompt, then the room
        packet = await udp_peer.next()
        heard.append(g711.decode("PCMA", packet[12:]))
        if (
            len(heard) >= 10
            and abs(dominant_frequency(np.concatenate(heard[-10:]), 8000) - 700) < 5
        ):
            break
    else:
        raise AssertionError("the room's 700 Hz tone never reached the caller")
    result = await call

    assert result.returncode == 0, result.errors
    assert live.stats.packets_sent > 0


async def test_personal_pin_by_dtmf_switches_a_browser_participant_to_phone(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.participant_pin("mentoring-3", "maya", "Maya", "mentee")
    phone.registry.join(
        "mentoring-3", "maya", "Maya", "mentee", connection="sid-1", media_mode=MediaMode.TEXT
    )

    call = phone.start_sipp(
        "call_external_media.xml",
        "+4930123456",
        hold_ms=3000,
        args=("-set", "rtpport", str(udp_peer.port)),
    )
    live = await phone.confirmed_call()
    assert live.room is None  # the dialled number is no PIN: the prompt asks for one
    for packet in key_presses(pin + "#", ssrc=1234, sequence=100, timestamp=8000):
        udp_peer.send(packet, live.local_rtp_port)
    await eventually(
        lambda: phone.registry.participant("mentoring-3", "maya").media_mode == MediaMode.PHONE
    )
    maya = phone.registry.participant("mentoring-3", "maya")
    assert maya is not None and maya.connection == "sid-1"  # the same participant
    result = await call

    assert result.returncode == 0, result.errors
    await phone.bus.drain()
    changes = [(e.mode, e.reason) for e in phone.of_type(MediaModeChanged)]
    assert changes == [("phone", "dialed_in"), ("text", "phone_hung_up")]
    assert phone.registry.participant("mentoring-3", "maya") is not None
    assert phone.of_type(ParticipantLeft) == []
    assert phone.gateway.ended_calls[-1].stats.dtmf_packets_received == 5 * (len(pin) + 1)
    assert phone.of_type(PhonePinRejected) == []


async def test_the_caller_hears_the_spoken_pin_prompt(phone: Phone, udp_peer: UdpPeer) -> None:
    call = phone.start_sipp(
        "call_external_media.xml",
        "+4930123456",
        hold_ms=2000,
        args=("-set", "rtpport", str(udp_peer.port)),
    )
    live = await phone.confirmed_call()
    assert live.room is None
    assert live.stats.packets_sent == 0  # nothing before the caller's first RTP packet
    udp_peer.send(
        g711_packets("PCMA", np.zeros(240, dtype=np.int16), 8, ssrc=7)[0], live.local_rtp_port
    )
    heard = b""
    while len(heard) < 8000:  # one second of A-law (the caller listed PCMA first)
        packet = await udp_peer.next()
        assert packet[1] & 0x7F == 8, packet[:12]
        heard += packet[12:]
    result = await call

    assert result.returncode == 0, result.errors
    # Byte for byte the recorded words "Please enter your meeting PIN…", from their start.
    words = g711.encode("PCMA", prompt.render(prompt.ASK_PIN))
    assert heard == words[: len(heard)]
    assert len(set(heard)) > 50  # speech, not silence or one tone


async def test_a_pin_keyed_as_sip_info_joins_the_room(phone: Phone, udp_peer: UdpPeer) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-5")
    keys = [arg for i, digit in enumerate(pin, 1) for arg in ("-set", f"d{i}", digit)]
    call = phone.start_sipp(
        "call_info_dtmf.xml",
        "+4930123456",
        hold_ms=1500,
        args=("-set", "rtpport", str(udp_peer.port), *keys),
    )
    live = await phone.confirmed_call()
    room = await eventually(lambda: phone.registry.get("mentoring-5"))
    caller = await eventually(lambda: next(iter(room.participants.values()), None))
    assert (caller.media_mode, caller.connection) == (MediaMode.PHONE, live.call_id)
    result = await call

    # sipp checked each answer: 415 for an INFO that is not DTMF, 200 for each key.
    assert result.returncode == 0, result.errors
    assert live.stats.dtmf_packets_received == 0  # the PIN came by SIP alone
    assert phone.of_type(PhonePinRejected) == []


async def test_a_pin_keyed_as_tones_in_the_audio_joins_the_room(phone: Phone) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-6")
    # Q.24: the shortest key tones a receiver must accept, 40 ms with 40 ms pauses.
    keys = key_tones(pin + "#", on_ms=40, off_ms=40)
    (phone.workdir / "keys.ulaw").write_bytes(g711.encode("PCMU", keys))

    call = phone.start_sipp("call_inband_dtmf.xml", "+4930123456", hold_ms=2500)
    live = await phone.confirmed_call()
    assert live.answer.dtmf_payload_type is None  # no key events: tones are all there is
    room = await eventually(lambda: phone.registry.get("mentoring-6"))
    caller = await eventually(lambda: next(iter(room.participants.values()), None))
    assert (caller.media_mode, caller.connection) == (MediaMode.PHONE, live.call_id)
    result = await call

    assert result.returncode == 0, result.errors
    assert live.stats.dtmf_packets_received == 0
    assert phone.of_type(PhonePinRejected) == []


async def test_max_call_length_hangs_up(make_phone: PhoneFactory, udp_peer: UdpPeer) -> None:
    phone = await make_phone(max_call_seconds=0.5)
    pin = await phone.pins.ensure_room_pin("mentoring-5")

    result = await phone.sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )

    assert result.returncode == 0, result.errors
    assert phone.gateway.ended_calls[-1].end_reason == "max_length"
    await phone.bus.drain()
    assert [e.reason for e in phone.of_type(ParticipantLeft)] == ["disconnected"]


async def test_cancel_while_ringing_gets_487(make_phone: PhoneFactory) -> None:
    phone = await make_phone(ring_seconds=10)

    result = await phone.sipp("cancel.xml", "123456")

    assert result.returncode == 0, result.errors
    assert phone.gateway.calls == {}
    assert phone.gateway.ended_calls[-1].end_reason == "cancelled"
    assert phone.metric("pairwise_phone_call_attempts_total", result="cancelled") == 1


async def test_options_gets_200(phone: Phone) -> None:
    result = await phone.sipp("options.xml", "ping")
    assert result.returncode == 0, result.errors


async def test_g729_only_offer_gets_488(phone: Phone) -> None:
    result = await phone.sipp("g729_only.xml", "123456")

    assert result.returncode == 0, result.errors
    assert phone.gateway.calls == {}
    assert phone.metric("pairwise_phone_call_attempts_total", result="no_codec") == 1
