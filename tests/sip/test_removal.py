"""A person an operator removed calls back with their personal PIN: refused, and the
pair's session log says so."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.pairs.model import Member
from server.pairs.store import PairStore
from server.phone.events import PhonePinRejected
from server.phone.pins import PinMatch
from server.phone.session_log import PinRejectionLog
from server.rooms.model import MediaMode
from server.rooms.removals import RemovalStore
from server.sessionlog.recorder import SessionRecorder
from server.store.schema import session_timeline
from tests.sip.conftest import Phone, UdpPeer, eventually

pytestmark = [pytest.mark.slow, pytest.mark.sip]


async def test_a_removed_persons_pin_is_refused_and_logged_for_the_pair(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pairs = PairStore(phone.database)
    await pairs.create(
        [Member("sam", "Sam", "mentor"), Member("maya", "Maya", "mentee")], room="pair-r"
    )
    recorder = SessionRecorder(phone.database, pairs)
    phone.bus.subscribe(recorder, "sessionlog", kinds=recorder.KINDS)
    pin_log = PinRejectionLog(phone.database, recorder)
    phone.bus.subscribe(pin_log, "phone-pin-log", kinds=pin_log.KINDS)
    pin = await phone.pins.participant_pin("pair-r", "maya", "Maya", "mentee")
    phone.registry.join(
        "pair-r", "sam", "Sam", "mentor", connection="sid-1", media_mode=MediaMode.VIDEO
    )
    await RemovalStore(phone.database).remove("pair-r", "maya")

    result = await phone.sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )

    assert result.returncode == 0, result.errors  # goodbye and BYE
    assert phone.registry.participant("pair-r", "maya") is None
    [rejected] = phone.of_type(PhonePinRejected)
    assert (rejected.room, rejected.reason, rejected.via, rejected.final) == (
        "pair-r", "removed", "request_uri", True,
    )  # fmt: skip
    await phone.bus.drain()
    async with phone.database.connect() as conn:
        rows = (
            await conn.execute(
                select(session_timeline.c.kind, session_timeline.c.detail).where(
                    session_timeline.c.kind == "phone_pin_rejected"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("phone_pin_rejected", "removed via request_uri from 127.0.0.1 (…001)")
    ]
    await eventually(lambda: phone.gateway.calls == {})


async def test_removing_someone_rotates_the_room_pin_they_know(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    """Maya read the room PIN in the room; after her removal it lets no one in, and the
    members are shown the new one (what the join ack's dial-in reads)."""
    old = await phone.pins.ensure_room_pin("pair-rot")
    phone.registry.join(
        "pair-rot", "maya", "Maya", "mentee", connection="sid-m", media_mode=MediaMode.VIDEO
    )
    await RemovalStore(phone.database).remove("pair-rot", "maya")
    phone.registry.leave("pair-rot", "maya", connection="sid-m", reason="removed")

    await phone.gateway.remove("pair-rot", "maya")

    new = await phone.pins.room_pin("pair-rot")
    assert new is not None and new != old
    assert await phone.pins.resolve(old) is None
    assert (await phone.pins.resolve(new)) == PinMatch("pair-rot")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", old, args=("-set", "rtpport", str(udp_peer.port))
    )
    [rejected] = await eventually(lambda: phone.of_type(PhonePinRejected))
    assert (rejected.reason, rejected.via) == ("wrong_pin", "request_uri")
    assert not phone.registry.get("pair-rot").participants  # type: ignore[union-attr]
    live = await phone.confirmed_call()
    await phone.gateway.hang_up(live.call_id)
    assert (await call).returncode == 0
    assert await phone.pins.rotate_room_pin("no-pin-room") is None  # none is made up


async def test_removing_a_room_pin_caller_hangs_up_their_call(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin("pair-hang")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    room = await eventually(lambda: phone.registry.get("pair-hang"))
    [identity] = list(room.participants)
    assert identity.startswith("phone-")

    assert await phone.gateway.remove("pair-hang", identity)

    result = await call  # the scenario ends only on the gateway's BYE
    assert result.returncode == 0, result.errors
    assert phone.gateway.calls == {}
    assert phone.registry.participant("pair-hang", identity) is None
    assert await phone.pins.room_pin("pair-hang") != pin
