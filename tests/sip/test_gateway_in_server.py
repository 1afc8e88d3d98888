"""The phone gateway as the server runs it: settings, REST PIN, sipp caller, a Socket.IO peer."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from server.media.phone import g711
from tests.sip.conftest import SCENARIOS
from tests.sip.media import tone
from tests.support.participants import SocketParticipant, issue_token
from tests.support.process import ADMIN_KEY, ServerProcess
from tests.support.services import free_port, require_program

pytestmark = [pytest.mark.slow, pytest.mark.sip]


def post(url: str) -> dict[str, str]:
    request = urllib.request.Request(
        url, data=b"", method="POST", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return dict(json.loads(resp.read()))


async def test_caller_with_room_pin_appears_in_the_room(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    sipp = require_program("sipp", "/usr/bin/sipp")
    sip_port = free_port()
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_SIP_BIND=f"127.0.0.1:{sip_port}",
        PAIRWISE_SIP_DIALIN_NUMBER="+1 555 0100",
        PAIRWISE_SIP_RTP_PORT_MIN="31000",
        PAIRWISE_SIP_RTP_PORT_MAX="31099",
    )
    pin = await asyncio.to_thread(post, server.url + "/api/v1/rooms/pair-phone/pin")
    assert pin["dial_in_number"] == "+1 555 0100" and pin["pin"].isdigit()

    mentor = await SocketParticipant(
        server.url, await asyncio.to_thread(issue_token, server.url, "pair-phone", "mentor")
    ).connect()
    await mentor.join()

    (tmp_path / "tone.ulaw").write_bytes(g711.encode("PCMU", tone(1000, 1.0)))
    call = await asyncio.create_subprocess_exec(
        sipp,
        f"127.0.0.1:{sip_port}",
        "-sf",
        str(SCENARIOS / "call_audio.xml"),
        "-s",
        pin["pin"],
        "-m",
        "1",
        "-d",
        "3000",
        "-i",
        "127.0.0.1",
        "-mi",
        "127.0.0.1",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    joined = await mentor.wait_for("participant_joined", {"media_mode": "phone"}, timeout=20)
    assert joined["role"] == "mentee"
    left = await mentor.wait_for("participant_left", {"identity": joined["identity"]}, timeout=30)
    assert left["identity"] == joined["identity"]
    assert await asyncio.wait_for(call.wait(), 30) == 0
    await mentor.close()
