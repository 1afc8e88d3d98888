"""PIN guessing with a real SIP peer: bounded per call, per source address, and counted
however the PIN arrives (keyed, or in the Request-URI)."""

from __future__ import annotations

import time

import pytest

from server.phone import sip
from server.phone.events import PhonePinRejected
from server.rooms.events import ParticipantJoined
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually, open_peer
from tests.sip.media import key_presses
from tests.sip.uac import SDP, answered_calls, final_response, request

pytestmark = [pytest.mark.slow, pytest.mark.sip]


class Keypad:
    """RFC 4733 key presses from the caller's media address (the SDP's), in order."""

    def __init__(self, peer: UdpPeer, port: int) -> None:
        self.peer, self.port = peer, port
        self.sequence, self.timestamp = 1, 1000

    def press(self, keys: str) -> None:
        packets = key_presses(keys, ssrc=99, sequence=self.sequence, timestamp=self.timestamp)
        for packet in packets:
            self.peer.send(packet, self.port)
        self.sequence += len(packets)
        self.timestamp += 1600 * len(keys) + 20_000


def wrong(pin: str) -> str:
    """A PIN of the same length that is not `pin`."""
    return ("1" if pin[0] != "1" else "2") + pin[1:]


async def test_three_wrong_pins_end_the_call_and_a_fourth_is_not_checked(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-4")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", "100", args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    keypad = Keypad(udp_peer, live.local_rtp_port)
    for attempt in range(1, 4):
        keypad.press(wrong(pin) + "#")
        await eventually(lambda n=attempt: len(phone.of_type(PhonePinRejected)) == n)
    keypad.press(pin + "#")  # the right PIN, during the goodbye: must not let them in
    result = await call  # the scenario ends when it has received and answered the BYE

    assert result.returncode == 0, result.errors
    rejected = phone.of_type(PhonePinRejected)
    assert [(e.attempt, e.final, e.reason, e.via) for e in rejected] == [
        (1, False, "wrong_pin", "dtmf"),
        (2, False, "wrong_pin", "dtmf"),
        (3, True, "wrong_pin", "dtmf"),
    ]
    assert rejected[0].call_id == live.call_id and rejected[0].caller == "…001"
    assert rejected[0].source == "127.0.0.1"
    await phone.bus.drain()
    assert phone.of_type(ParticipantJoined) == []
    assert phone.registry.get("mentoring-4") is None
    assert phone.gateway.ended_calls[-1].end_reason == "pin_rejected"
    assert phone.metric("pairwise_phone_call_attempts_total", result="pin_rejected") == 1
    assert phone.metric("pairwise_phone_pin_failures_total", via="dtmf") == 3


async def test_a_pin_in_the_request_uri_is_a_counted_and_logged_guess(
    phone: Phone, udp_peer: UdpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-7")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", wrong(pin), args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    await eventually(lambda: phone.of_type(PhonePinRejected))
    keypad = Keypad(udp_peer, live.local_rtp_port)
    for attempt in (2, 3):  # the Request-URI used the first of three tries
        keypad.press(wrong(pin) + "#")
        await eventually(lambda n=attempt: len(phone.of_type(PhonePinRejected)) == n)
    result = await call

    assert result.returncode == 0, result.errors
    rejected = phone.of_type(PhonePinRejected)
    assert [(e.via, e.attempt, e.final) for e in rejected] == [
        ("request_uri", 1, False),
        ("dtmf", 2, False),
        ("dtmf", 3, True),
    ]
    assert phone.metric("pairwise_phone_pin_failures_total", via="request_uri") == 1
    logged = [r for r in caplog.records if r.getMessage() == "phone PIN rejected"]
    assert [(r.via, r.source) for r in logged][0] == ("request_uri", "127.0.0.1")  # type: ignore[attr-defined]


async def test_a_source_over_its_wrong_pin_limit_is_refused_new_calls(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(pin_failures_per_source=2)
    pin = await phone.pins.ensure_room_pin("mentoring-8")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", wrong(pin), args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    await eventually(lambda: phone.of_type(PhonePinRejected))  # failure 1: the Request-URI
    Keypad(udp_peer, live.local_rtp_port).press(wrong(pin) + "#")  # failure 2: the limit
    first = await call  # locked out: the call ends although it had a try left

    assert first.returncode == 0, first.errors
    assert [(e.attempt, e.final) for e in phone.of_type(PhonePinRejected)] == [
        (1, False),
        (2, True),
    ]
    assert phone.metric("pairwise_phone_pin_sources_locked_total") == 1

    refused = await phone.sipp("refused_403.xml", pin)  # even with the right PIN

    assert refused.returncode == 0, refused.errors
    assert phone.metric("pairwise_phone_call_attempts_total", result="pin_locked") == 1
    assert phone.registry.get("mentoring-8") is None
    # The console's refusal counts include the call refused at the door, not only PINs.
    counts = phone.gateway.refusals.counts(time.time())
    assert counts.since_start == {"wrong_pin": 2, "source_locked": 1}, counts
    door = counts.recent[0]
    assert (door.reason, door.via, door.source, door.room) == (
        "source_locked",
        "call",
        "127.0.0.1",
        "",
    )


async def test_pins_keyed_in_many_calls_at_once_are_checked_no_more_than_the_limit(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(pin_failures_per_source=2)
    pin = await phone.pins.ensure_room_pin("mentoring-race")
    # Twenty calls answered first, then all their ACKs (and so their PINs) together.
    await answered_calls(udp_peer, phone.gateway.port, {f"race-{n}": wrong(pin) for n in range(20)})
    await eventually(lambda: len(phone.of_type(PhonePinRejected)) == 20)

    assert phone.metric("pairwise_phone_pin_failures_total", via="header") == 2
    assert phone.metric("pairwise_phone_pin_checks_refused_total", reason="source_locked") == 18
    assert sum(e.reason == "wrong_pin" for e in phone.of_type(PhonePinRejected)) == 2


async def test_the_global_ceiling_bounds_guesses_from_many_addresses_and_a_trunk_still_calls(
    make_phone: PhoneFactory,
) -> None:
    phone = await make_phone(pin_failures_per_minute=4)  # 3 for new addresses, 1 for known
    pin = await phone.pins.ensure_room_pin("mentoring-g")
    trunk, newcomer = await open_peer("127.0.0.10"), await open_peer("127.0.0.30")
    guessers = [await open_peer(f"127.0.0.{n}") for n in range(11, 19)]
    try:
        await answered_calls(trunk, phone.gateway.port, {"trunk-1": pin})  # let in before
        await eventually(lambda: phone.registry.get("mentoring-g"))
        for n, guesser in enumerate(guessers):  # eight addresses, three guesses each
            await answered_calls(
                guesser, phone.gateway.port, {f"guess-{n}-{k}": wrong(pin) for k in range(3)}
            )
        await eventually(lambda: len(phone.of_type(PhonePinRejected)) == 24)
        await answered_calls(trunk, phone.gateway.port, {"trunk-2": pin})  # during the attack
        await answered_calls(newcomer, phone.gateway.port, {"newcomer": pin})
        await eventually(lambda: len(phone.of_type(PhonePinRejected)) == 25)
        room = await eventually(lambda: phone.registry.get("mentoring-g"))
        await eventually(lambda: len(room.participants) == 2)
    finally:
        for peer in (trunk, newcomer, *guessers):
            peer.close()

    assert phone.metric("pairwise_phone_pin_failures_total", via="header") == 3  # the ceiling
    assert phone.metric("pairwise_phone_pin_checks_refused_total", reason="over_ceiling") == 22
    newcomer_rejected = phone.of_type(PhonePinRejected)[-1]
    assert (newcomer_rejected.source, newcomer_rejected.reason) == ("127.0.0.30", "over_ceiling")
    assert {c.source for c in phone.gateway.calls.values() if c.room} == {"127.0.0.10"}


async def test_addresses_that_proved_a_right_pin_stay_under_the_global_ceiling(
    make_phone: PhoneFactory,
) -> None:
    """An attacker who is let in once from each of several addresses (say with a room
    PIN they were given) must not then guess from them beyond the global ceiling."""
    phone = await make_phone(pin_failures_per_minute=4)  # the proven share: 1 a minute
    pin = await phone.pins.ensure_room_pin("mentoring-p")
    peers = [await open_peer(f"127.0.0.{n}") for n in range(41, 45)]
    try:
        for n, peer in enumerate(peers):
            # One at a time: a right PIN's check holds a token of the (3-token) newcomers'
            # share until it is found right, so four at once could not all be checked.
            await answered_calls(peer, phone.gateway.port, {f"prove-{n}": pin})
            await eventually(
                lambda n=n: (
                    len(getattr(phone.registry.get("mentoring-p"), "participants", ())) == n + 1
                ),
                timeout=30,
            )
        for n, peer in enumerate(peers):  # four proven addresses, three guesses each
            await answered_calls(
                peer, phone.gateway.port, {f"guess-{n}-{k}": wrong(pin) for k in range(3)}
            )
        await eventually(lambda: len(phone.of_type(PhonePinRejected)) == 12, timeout=30)
    finally:
        for peer in peers:
            peer.close()

    assert phone.metric("pairwise_phone_pin_failures_total", via="header") == 1  # checked
    assert phone.metric("pairwise_phone_pin_checks_refused_total", reason="over_ceiling") == 11


async def test_a_pin_in_x_room_pin_is_a_counted_guess(phone: Phone, udp_peer: UdpPeer) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-x")
    invite = request("INVITE", "header-pin", body=SDP, extra=f"X-Room-Pin: {wrong(pin)}\r\n")
    udp_peer.send(invite, phone.gateway.port)
    ok = await final_response(udp_peer)
    udp_peer.send(
        request("ACK", "header-pin", to_tag=sip.header_param(ok.get("To"), "tag") or ""),
        phone.gateway.port,
    )

    [rejected] = await eventually(lambda: phone.of_type(PhonePinRejected))
    assert (rejected.via, rejected.attempt, rejected.final) == ("header", 1, False)
    assert phone.metric("pairwise_phone_pin_failures_total", via="header") == 1
