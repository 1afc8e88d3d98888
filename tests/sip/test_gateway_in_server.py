"""The phone gateway as the server runs it: settings, REST PIN, sipp caller, a Socket.IO peer."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from server.media.phone import g711
from tests.sip.conftest import run_sipp
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
    call = asyncio.create_task(
        run_sipp(sipp, sip_port, "call_audio.xml", pin["pin"], tmp_path, hold_ms=3000)
    )
    joined = await mentor.wait_for("participant_joined", {"media_mode": "phone"}, timeout=20)
    assert joined["role"] == "mentee"
    left = await mentor.wait_for("participant_left", {"identity": joined["identity"]}, timeout=30)
    assert left["identity"] == joined["identity"]
    result = await asyncio.wait_for(call, 30)
    assert result.returncode == 0, result.errors
    await mentor.close()
