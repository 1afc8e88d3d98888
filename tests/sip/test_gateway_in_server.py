"""The phone gateway as the server runs it: settings, REST PIN, sipp caller, a Socket.IO peer."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.phone import g711
from tests.sip.conftest import UdpPeer, eventually, run_sipp
from tests.sip.media import tone
from tests.sip.trunk import Trunk
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


def api(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """An operator's REST call; the JSON answer (an error's too)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))


def present(server: ServerProcess, room: str) -> set[str]:
    state = api("GET", f"{server.url}/api/v1/rooms/{room}")
    return {p["identity"] for p in state.get("participants", [])}


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


async def test_an_operator_removes_a_phone_caller_who_cannot_call_back_with_their_pin(
    server_process: Callable[..., ServerProcess], tmp_path: Path, udp_peer: UdpPeer
) -> None:
    sipp = require_program("sipp", "/usr/bin/sipp")
    sip_port = free_port()
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_SIP_BIND=f"127.0.0.1:{sip_port}",
        PAIRWISE_SIP_RTP_PORT_MIN="31100",
        PAIRWISE_SIP_RTP_PORT_MAX="31199",
    )
    personal = {"identity": "maya", "name": "Maya", "role": "mentee"}
    url = f"{server.url}/api/v1/rooms/pair-phone"
    pin = (await asyncio.to_thread(api, "POST", url + "/participant-pins", personal))["pin"]
    media = ("-set", "rtpport", str(udp_peer.port))

    call = asyncio.create_task(
        run_sipp(sipp, sip_port, "call_wait_for_bye.xml", pin, tmp_path, args=media)
    )
    await eventually(lambda: "maya" in present(server, "pair-phone"), timeout=20)
    removed = await asyncio.to_thread(api, "DELETE", url + "/participants/maya")

    assert removed["disconnected"] is True
    result = await asyncio.wait_for(call, 30)  # the scenario ends on the gateway's BYE
    assert result.returncode == 0, result.errors
    assert "maya" not in present(server, "pair-phone")

    again = await run_sipp(sipp, sip_port, "call_wait_for_bye.xml", pin, tmp_path, args=media)
    assert again.returncode == 0, again.errors  # refused: goodbye and BYE
    assert "maya" not in present(server, "pair-phone")
    fresh = await asyncio.to_thread(api, "POST", url + "/participant-pins", personal)
    assert fresh["pin"] != pin  # a PIN issued after the removal lets them back in


async def test_star_six_shows_the_caller_muted_to_the_room(
    server_process: Callable[..., ServerProcess], tmp_path: Path, udp_peer: UdpPeer
) -> None:
    """The app's wiring: *6 reaches the SFU and the others' `media_state`, as a browser's
    mute does; the operators' list of live calls shows it too."""
    sipp = require_program("sipp", "/usr/bin/sipp")
    sip_port = free_port()
    server = await asyncio.to_thread(
        server_process,
        PAIRWISE_SIP_BIND=f"127.0.0.1:{sip_port}",
        PAIRWISE_SIP_RTP_PORT_MIN="31200",
        PAIRWISE_SIP_RTP_PORT_MAX="31299",
    )
    pin = await asyncio.to_thread(post, server.url + "/api/v1/rooms/pair-mute/pin")
    mentor = await SocketParticipant(
        server.url, await asyncio.to_thread(issue_token, server.url, "pair-mute", "mentor")
    ).connect()
    await mentor.join()
    call = asyncio.create_task(
        run_sipp(sipp, sip_port, "call_star6.xml", pin["pin"], tmp_path, hold_ms=3000,
                 args=("-set", "rtpport", str(udp_peer.port)))
    )  # fmt: skip
    joined = await mentor.wait_for("participant_joined", {"media_mode": "phone"}, timeout=20)

    state = await mentor.wait_for("media_state", {"identity": joined["identity"]}, timeout=20)
    assert state["audio"] is False
    live = await asyncio.to_thread(api, "GET", f"{server.url}/api/v1/phone/calls")
    assert [(c["room"], c["muted"]) for c in live["calls"]] == [("pair-mute", True)]
    result = await asyncio.wait_for(call, 30)
    assert result.returncode == 0, result.errors
    await mentor.close()


def member_call(method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """A member's REST call with their join token: (status, JSON answer)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_a_member_asks_to_be_called_then_cancels_and_the_trunk_gets_a_cancel(
    server_process: Callable[..., ServerProcess],
) -> None:
    """From the environment to the trunk: "call me" over REST rings the trunk (a Python
    one, `PAIRWISE_SIP_TRUNK_*` as an operator sets them), and the member's DELETE
    cancels it while it rings."""
    trunk = await Trunk("UDP").start()
    try:
        server = await asyncio.to_thread(
            server_process,
            PAIRWISE_SIP_BIND=f"127.0.0.1:{free_port()}",
            PAIRWISE_SIP_RTP_PORT_MIN="31200",
            PAIRWISE_SIP_RTP_PORT_MAX="31299",
            PAIRWISE_SIP_TRUNK_URI=f"sip:127.0.0.1:{trunk.port}",
            PAIRWISE_SIP_TRUNK_TRANSPORT="udp",
            PAIRWISE_SIP_TRUNK_SRTP="optional",
            PAIRWISE_SIP_DIALOUT_PREFIXES='["+4930"]',
        )
        token = await asyncio.to_thread(issue_token, server.url, "pair-out", "maya")
        url = f"{server.url}/api/v1/rooms/pair-out/phone/call-me"
        status, body = await asyncio.to_thread(
            member_call, "POST", url, token, {"number": "+4930 1234567"}
        )
        assert (status, body) == (202, {"status": "calling", "number": "…567"})
        invite = await trunk.request("INVITE")
        assert invite.uri.startswith("sip:+49301234567@") and b"a=crypto:1 " in invite.body
        trunk.reply(invite, 180)

        status, body = await asyncio.to_thread(member_call, "DELETE", url, token)
        assert (status, body) == (200, {"cancelled": True})
        cancel = await trunk.request("CANCEL")
        assert cancel.branch == invite.branch
        trunk.reply(cancel, 200)
        trunk.reply(invite, 487)
        assert (await trunk.request("ACK")).cseq == (1, "ACK")
        status, body = await asyncio.to_thread(member_call, "DELETE", url, token)
        assert (status, body) == (200, {"cancelled": False})  # nothing rings any more

        # Asked again: an operator sees it ringing, and removing the member cancels it.
        status, _ = await asyncio.to_thread(
            member_call, "POST", url, token, {"number": "+4930 1234567"}
        )
        assert status == 202
        again = await trunk.request("INVITE")
        trunk.reply(again, 180)
        live = await asyncio.to_thread(api, "GET", f"{server.url}/api/v1/phone/calls")
        assert [(c["state"], c["room"], c["identity"]) for c in live["calls"]] == [
            ("ringing", "pair-out", "maya")
        ]
        removed = await asyncio.to_thread(
            api, "DELETE", f"{server.url}/api/v1/rooms/pair-out/participants/maya"
        )
        assert removed["disconnected"] is True
        cancel = await trunk.request("CANCEL")
        assert cancel.branch == again.branch
        trunk.reply(cancel, 200)
        trunk.reply(again, 487)
        assert (await trunk.request("ACK")).cseq == (1, "ACK")
        live = await asyncio.to_thread(api, "GET", f"{server.url}/api/v1/phone/calls")
        assert live["calls"] == []
    finally:
        trunk.close()
