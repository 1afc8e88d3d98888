"""Dial-out ("call me"): the gateway calls a member through a trunk that challenges it
(sipp as the trunk: a 401, its verifyauth on the digest answer, then 200 and BYE), and
the answered call joins the room as that member."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.errors import Forbidden, InvalidInput, NotFound, RateLimited
from server.pairs.model import Member
from server.pairs.store import PairStore
from server.phone.dialout import check_number
from server.rooms.events import ParticipantJoined
from server.rooms.model import MediaMode
from tests.sip.conftest import SCENARIOS, PhoneFactory, eventually
from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.sip]


async def trunk(sipp: str, port: int, workdir: Path) -> asyncio.subprocess.Process:
    """sipp as the trunk's UAS on 127.0.0.1:`port`, for one call."""
    return await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SCENARIOS / "trunk_challenge.xml"), "-p", str(port), "-m", "1",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-timeout", "30s",
        "-timeout_error", "-trace_err", "-error_file", str(workdir / "trunk.errors"),
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_call_me_rings_the_member_through_the_trunk_and_brings_them_in(
    make_phone: PhoneFactory,
) -> None:
    port = free_port()
    phone = await make_phone(
        trunk_uri=f"sip:127.0.0.1:{port}",
        trunk_username="pairwise-user",
        trunk_password="s3cret",
        dialout_prefixes=("+4930",),
    )
    sipp = await trunk(phone.sipp_path, port, phone.workdir)  # the INVITE is resent till up
    phone.registry.join(
        "room-out", "maya", "Maya", "mentee", connection="sid-maya", media_mode=MediaMode.TEXT
    )

    masked = await phone.gateway.call_me("room-out", "maya", "Maya", "mentee", "+49 30 1234 567")

    assert masked == "…567"
    present = await eventually(
        lambda: (p := phone.registry.participant("room-out", "maya")) and
        p.media_mode == MediaMode.PHONE and p, timeout=20,
    )  # fmt: skip
    assert present.name == "Maya"
    returncode = await asyncio.wait_for(sipp.wait(), 30)  # its BYE was answered: exit 0
    errors = phone.workdir / "trunk.errors"
    assert returncode == 0, errors.read_text() if errors.exists() else ""
    await eventually(lambda: phone.gateway.calls == {})
    await eventually(
        lambda: phone.registry.participant("room-out", "maya").media_mode == MediaMode.TEXT  # type: ignore[union-attr]
    )  # back to where she was
    assert phone.metric("pairwise_phone_call_attempts_total", result="dialled_out") == 1


async def test_a_wrong_trunk_password_connects_nothing(make_phone: PhoneFactory) -> None:
    port = free_port()
    phone = await make_phone(
        trunk_uri=f"sip:127.0.0.1:{port}",
        trunk_username="pairwise-user",
        trunk_password="not-it",
        dialout_prefixes=("+4930",),
    )
    sipp = await trunk(phone.sipp_path, port, phone.workdir)
    await phone.gateway.call_me("room-out", "maya", "Maya", "mentee", "+4930123456")
    await eventually(
        lambda: phone.metric("pairwise_phone_call_attempts_total", result="dial_out_failed"),
        timeout=20,
    )
    await asyncio.wait_for(sipp.wait(), 30)
    assert phone.registry.get("room-out") is None and phone.gateway.calls == {}


async def test_call_me_is_refused_before_anything_is_dialled(make_phone: PhoneFactory) -> None:
    phone = await make_phone(
        trunk_uri="sip:127.0.0.1:9", dialout_prefixes=("+4930",), dialout_per_hour=2
    )
    pair = await PairStore(phone.database).create(
        [Member("sam", "Sam", "mentor"), Member("maya", "Maya", "mentee")], room="pair-out"
    )
    with pytest.raises(InvalidInput):
        await phone.gateway.call_me("r", "maya", "Maya", "mentee", "030 1234567")
    with pytest.raises(Forbidden):  # toll fraud: only the allowed prefixes
        await phone.gateway.call_me("r", "maya", "Maya", "mentee", "+882 1234 5678")
    await PairStore(phone.database).set_status(pair.id, "unpublished")
    with pytest.raises(Forbidden) as closed:
        await phone.gateway.call_me("pair-out", "maya", "Maya", "mentee", "+4930123456")
    assert closed.value.code == "room_closed"
    await phone.gateway.call_me("r", "maya", "Maya", "mentee", "+4930123456")
    await phone.gateway.call_me("r", "maya", "Maya", "mentee", "+4930123456")
    with pytest.raises(RateLimited):  # per member and room
        await phone.gateway.call_me("r", "maya", "Maya", "mentee", "+4930123456")
    await phone.gateway.call_me("r", "sam", "Sam", "mentor", "+4930123456")  # another member
    assert phone.of_type(ParticipantJoined) == []
    nothing = await make_phone()
    with pytest.raises(NotFound):
        await nothing.gateway.call_me("r", "maya", "Maya", "mentee", "+4930123456")


def test_numbers() -> None:
    assert check_number("+49 (30) 123-4567", ("+49",)) == "+49301234567"
    for bad in ("+0123456789", "+12", "4930123456", "+4930123456789012345", "+49 30 12a4"):
        with pytest.raises(InvalidInput):
            check_number(bad, ("+",))
    with pytest.raises(Forbidden):
        check_number("+4930123456", ())  # no prefixes: nothing may be dialled
