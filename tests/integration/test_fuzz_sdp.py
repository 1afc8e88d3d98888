"""Mutated SDP offers at the SFU: an error ack or a real answer, never a crash; media still
works afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.app import create_app
from server.config import Settings
from tests.support.participants import SocketParticipant, issue_token

EXAMPLES = int(os.environ.get("PAIRWISE_FUZZ_EXAMPLES", "150"))
MEDIA_ERRORS = {
    "invalid_payload",
    "invalid_sdp",
    "rate_limited",
    "forbidden",
    "no_media_connection",
}


async def real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def mutations(lines: list[str]) -> st.SearchStrategy[str]:
    n = len(lines)
    edit = st.one_of(
        st.tuples(st.just("drop"), st.integers(0, n - 1), st.just("")),
        st.tuples(st.just("dup"), st.integers(0, n - 1), st.just("")),
        st.tuples(st.just("replace"), st.integers(0, n - 1), st.text(max_size=80)),
        st.tuples(st.just("insert"), st.integers(0, n), st.text(max_size=80)),
        st.tuples(st.just("number"), st.integers(0, n - 1), st.integers(-(2**40), 2**40).map(str)),
    )

    def apply(edits: list[tuple[str, int, str]], cut: int | None) -> str:
        out = list(lines)
        for kind, at, value in edits:
            at = min(at, len(out) - 1) if kind != "insert" else min(at, len(out))
            if not out:
                break
            if kind == "drop":
                del out[at]
            elif kind == "dup":
                out.insert(at, out[at])
            elif kind == "replace":
                out[at] = value
            elif kind == "insert":
                out.insert(at, value)
            else:  # put a wild number where the line has its first number
                head, _, tail = out[at].partition(" ")
                out[at] = f"{head} {value} {tail}".strip()
        text = "\r\n".join(out) + "\r\n"
        return text[:cut] if cut is not None else text

    return st.builds(
        apply, st.lists(edit, min_size=1, max_size=6), st.none() | st.integers(0, 4000)
    )


async def test_mutated_offers_never_break_the_sfu(
    aiohttp_server: Any, make_settings: Callable[..., Settings]
) -> None:
    offer = await real_offer()
    cases: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutations(offer.strip().split("\r\n")))
    def collect(sdp: str) -> None:
        cases.append(sdp)

    collect()
    server = await aiohttp_server(
        create_app(make_settings(events_rate_per_second=10_000.0, events_burst=10_000))
    )
    url = str(server.make_url("")).rstrip("/")
    token = await asyncio.to_thread(issue_token, url, "fuzz-sdp", "mallory")
    mallory = await SocketParticipant(url, token).connect()
    await mallory.join()
    answered = refused = 0
    for sdp in cases:
        ack = await mallory.call("media_offer", {"sdp": sdp, "type": "offer"}, timeout=30)
        if "error" in ack:
            assert ack["error"]["code"] in MEDIA_ERRORS, (sdp, ack)
            refused += 1
        else:
            assert ack["sdp"].startswith("v=0"), ack
            answered += 1
            assert "error" not in await mallory.call("media_close", {})
    assert refused > 0 and answered + refused == len(cases) == EXAMPLES

    # The SFU still serves a well-formed participant.
    ada = await SocketParticipant(
        url, await asyncio.to_thread(issue_token, url, "fuzz-sdp", "ada")
    ).connect()
    await ada.join()
    ack = await ada.call("media_offer", {"sdp": offer, "type": "offer"})
    assert ack["sdp"].startswith("v=0") and "m=video" in ack["sdp"]
    await ada.close()
    await mallory.close()
