"""A room whose pair was ended or rematched takes no phone callers: its PINs are gone,
and a PIN read just before the pair ended is refused with "this room is closed"."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from server.pairs.model import Member
from server.pairs.store import PairStore
from server.phone.events import PhonePinRejected
from server.rooms.events import ParticipantJoined
from server.store.schema import pairs
from tests.sip.conftest import Phone, PhoneFactory, UdpPeer, eventually

pytestmark = [pytest.mark.slow, pytest.mark.sip]

MEMBERS = [Member("sam", "Sam", "mentor"), Member("maya", "Maya", "mentee")]


async def test_ending_a_pair_deletes_its_rooms_pins_so_callers_are_refused(
    make_phone: PhoneFactory, udp_peer: UdpPeer
) -> None:
    phone = await make_phone(pin_timeout_seconds=0.3)  # the two tries left time out fast
    store = PairStore(phone.database)
    pair = await store.create(MEMBERS, room="pair-ended")
    room_pin = await phone.pins.ensure_room_pin("pair-ended")
    personal = await phone.pins.participant_pin("pair-ended", "maya", "Maya", "mentee")
    other_pin = await phone.pins.ensure_room_pin("another-room")

    await store.set_status(pair.id, "unpublished")  # what rematch (and ending) do

    assert await phone.pins.room_pin("pair-ended") is None
    assert await phone.pins.resolve(room_pin) is None
    assert await phone.pins.resolve(personal) is None
    assert await phone.pins.resolve(other_pin) is not None  # other rooms keep theirs
    for pin in (room_pin, personal):
        result = await phone.sipp(
            "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
        )
        assert result.returncode == 0, result.errors  # goodbye and BYE
    await phone.bus.drain()
    assert [e.reason for e in phone.of_type(PhonePinRejected) if e.attempt == 1] == [
        "wrong_pin", "wrong_pin",
    ]  # fmt: skip
    assert phone.of_type(ParticipantJoined) == []
    assert phone.registry.get("pair-ended") is None


async def test_a_pin_of_a_room_closed_meanwhile_hears_room_closed_and_is_hung_up(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    """The pair ends by a path that has not dropped the PINs (yet): the gateway asks
    `require_open_room` for every PIN that resolves."""
    store = PairStore(phone.database)
    pair = await store.create(MEMBERS, room="pair-closing")
    pin = await phone.pins.participant_pin("pair-closing", "maya", "Maya", "mentee")
    async with phone.database.begin() as conn:
        await conn.execute(update(pairs).where(pairs.c.id == pair.id).values(status="ended"))

    result = await phone.sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )

    assert result.returncode == 0, result.errors  # refused, then the gateway's BYE
    [rejected] = phone.of_type(PhonePinRejected)
    assert (rejected.room, rejected.reason, rejected.final) == ("pair-closing", "room_closed", True)
    await phone.bus.drain()
    assert phone.of_type(ParticipantJoined) == []
    assert phone.registry.get("pair-closing") is None
    await eventually(lambda: phone.gateway.calls == {})
    assert phone.gateway.ended_calls[-1].end_reason == "pin_rejected"
    # A known PIN is not a guess: the trunk's address keeps its failures.
    assert phone.metric("pairwise_phone_pin_failures_total", via="request_uri") == 0


async def test_an_open_pairs_room_still_admits(phone: Phone, udp_peer: UdpPeer) -> None:
    await PairStore(phone.database).create(MEMBERS, room="pair-open")
    pin = await phone.pins.participant_pin("pair-open", "maya", "Maya", "mentee")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    await eventually(lambda: phone.registry.participant("pair-open", "maya"))
    assert await phone.gateway.remove("pair-open", "maya")
    assert (await call).returncode == 0
