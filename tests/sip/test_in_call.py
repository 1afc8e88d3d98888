"""In the room by phone: the caller hears who is there, `*6` mutes and unmutes them
(the room sees it as a browser's mute), and operators see live calls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aiohttp import web

from server.api.http import error_middleware
from server.api.keys import SETTINGS
from server.config import load_settings
from server.phone import api, prompt
from server.rooms.events import MediaControlsChanged
from server.rooms.model import MediaMode
from tests.conftest import ADMIN
from tests.sip.conftest import Phone, UdpPeer, eventually
from tests.sip.media import g711_packets
from tests.sip.test_pin_guessing import Keypad
from tests.support.process import ADMIN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def joining_with(others: int) -> np.ndarray:
    return np.concatenate(
        [prompt.render(prompt.ACCEPTED), prompt.render(prompt.who_is_here(others))]
    )


async def test_the_caller_hears_how_many_others_are_in_the_room(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-who")
    for n, role in enumerate(("mentor", "mentee", "observer")):
        phone.registry.join(
            "mentoring-who", f"p{n}", f"P{n}", role, connection=f"sid-{n}",
            media_mode=MediaMode.VIDEO,
        )  # fmt: skip
    call = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    await eventually(lambda: live.room)

    # "You are joining the meeting. Two other people are here." (the observer is not one)
    assert np.array_equal(live.prompt.samples, joining_with(2))
    assert prompt.who_is_here(0) is prompt.ALONE and prompt.who_is_here(9) is prompt.MANY
    await phone.gateway.hang_up(live.call_id)
    assert (await call).returncode == 0


async def test_star_six_mutes_and_unmutes_the_caller_in_the_room(
    phone: Phone, udp_peer: UdpPeer
) -> None:
    pin = await phone.pins.ensure_room_pin("mentoring-mute")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    await eventually(lambda: live.room)
    identity = live.room.identity  # type: ignore[union-attr]
    keypad = Keypad(udp_peer, live.local_rtp_port)

    keypad.press("*6")
    [muted] = await eventually(lambda: phone.of_type(MediaControlsChanged))
    assert (muted.room, muted.identity, muted.audio) == ("mentoring-mute", identity, False)
    assert live.muted and np.array_equal(live.prompt.samples, prompt.render(prompt.MUTED))
    await eventually(lambda: not live.prompting)
    track = live.phone_track
    assert track is not None
    before = track._queue.qsize()
    audio = np.full(1600, 3000, np.int16)
    for packet in g711_packets(live.answer.codec, audio, live.answer.payload_type, ssrc=99,
                               sequence=500, timestamp=90_000, ptime_ms=20):  # fmt: skip
        udp_peer.send(packet, live.local_rtp_port)
    await eventually(lambda: live.stats.audio_frames_received >= 10)
    assert track._queue.qsize() == before  # nothing of a muted caller reaches the room

    keypad.sequence, keypad.timestamp = 600, 200_000
    keypad.press("*6")
    await eventually(lambda: len(phone.of_type(MediaControlsChanged)) == 2)
    assert phone.of_type(MediaControlsChanged)[-1].audio is True and not live.muted
    await phone.gateway.hang_up(live.call_id)
    assert (await call).returncode == 0


async def test_operators_see_live_calls(
    phone: Phone, udp_peer: UdpPeer, aiohttp_client: Any
) -> None:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = load_settings(admin_key=ADMIN_KEY)
    app[api.PHONE] = phone.gateway
    api.routes.install(app)
    client = await aiohttp_client(app)
    assert (await (await client.get("/api/v1/phone/calls", headers=ADMIN)).json()) == {"calls": []}
    pin = await phone.pins.ensure_room_pin("mentoring-live")
    call = phone.start_sipp(
        "call_wait_for_bye.xml", pin, args=("-set", "rtpport", str(udp_peer.port))
    )
    live = await phone.confirmed_call()
    await eventually(lambda: live.room)
    await phone.gateway.set_muted(live, True)

    answer = await client.get("/api/v1/phone/calls", headers=ADMIN)
    [shown] = (await answer.json())["calls"]

    assert answer.status == 200
    assert shown["room"] == "mentoring-live" and shown["caller"] == "…001"
    assert shown["muted"] is True and shown["transport"] == "UDP"
    assert shown["encrypted"] is False and shown["identity"].startswith("phone-")
    assert abs(shown["since"] - live.since) < 1
    assert "+15550100" not in await answer.text()  # the number stays masked
    assert (await client.get("/api/v1/phone/calls")).status == 401
    await phone.gateway.hang_up(live.call_id)
    assert (await call).returncode == 0
