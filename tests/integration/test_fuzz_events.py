"""Random payloads at every event: no crash, an error ack for everything invalid, no garbage stored."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.app import create_app
from server.config import Settings
from tests.support.participants import SocketParticipant, issue_token

EXAMPLES = int(os.environ.get("PAIRWISE_FUZZ_EXAMPLES", "300"))
EVENTS = [
    "join",
    "chat",
    "history",
    "typing",
    "read",
    "presence",
    "media_mode",
    "leave",
    "no_such_event",
]
ERROR_CODES = {
    "invalid_payload",
    "too_long",
    "not_joined",
    "forbidden",
    "unknown_event",
    "rate_limited",
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.binary(max_size=50),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
valid_looking_chat = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=50), "client_id": st.text(min_size=1, max_size=20)}
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "text": values,
        "client_id": values,
        "before": values,
        "limit": values,
        "typing": values,
        "up_to": values,
        "presence": values,
        "mode": values,
        "reason": values,
        "media_mode": values,
    },
)
payloads = st.one_of(values, near_valid, valid_looking_chat)


def valid_chat(payload: Any) -> bool:
    return (
        isinstance(payload, dict)
        and set(payload) == {"text", "client_id"}
        and isinstance(payload["text"], str)
        and 0 < len(payload["text"].strip()) <= 4000
        and isinstance(payload["client_id"], str)
        and 0 < len(payload["client_id"]) <= 100
    )


async def test_fuzzed_events(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> None:
    cases: list[tuple[str, Any]] = []

    @settings(
        max_examples=EXAMPLES,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(event=st.sampled_from(EVENTS), payload=payloads)
    def collect(event: str, payload: Any) -> None:
        cases.append((event, payload))

    collect()
    server = await aiohttp_server(
        create_app(
            make_settings(
                events_rate_per_second=10_000.0,
                events_burst=10_000,
                chat_rate_per_second=10_000.0,
                chat_burst=10_000,
            )
        )
    )
    url = str(server.make_url("")).rstrip("/")
    token = await asyncio.to_thread(issue_token, url, "fuzz", "fuzzer")
    fuzzer = await SocketParticipant(url, token).connect()
    await fuzzer.join()
    accepted_chat: dict[str, str] = {}  # client_id → the text stored first (resends keep it)
    for event, payload in cases:
        ack = await fuzzer.call(event, payload)
        assert isinstance(ack, dict), (event, payload, ack)
        if "error" in ack:
            assert ack["error"]["code"] in ERROR_CODES, (event, payload, ack)
            assert not (
                event == "chat"
                and valid_chat(payload)
                and ack["error"]["code"] not in ("not_joined",)
            ), (payload, ack)
        elif event == "chat":
            assert valid_chat(payload), (payload, ack)
            accepted_chat.setdefault(payload["client_id"], payload["text"].strip())
        if event == "leave" and "error" not in ack:
            await fuzzer.join()
    assert len(cases) == EXAMPLES
    assert accepted_chat, "the fuzzer should also hit valid chat messages"

    checker_token = await asyncio.to_thread(issue_token, url, "fuzz", "checker")
    checker = await SocketParticipant(url, checker_token).connect()
    stored: list[dict[str, Any]] = []
    before = None
    while True:
        page = await checker.call("history", {"before": before, "limit": 200} if before else {})
        if "error" in page:  # not joined yet
            await checker.join()
            continue
        stored = page["messages"] + stored
        if not page["has_more"]:
            break
        before = page["messages"][0]["id"]
    assert {m["client_id"]: m["text"] for m in stored} == accepted_chat
    assert len(stored) == len(accepted_chat)
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as resp:
        assert resp.status == 200
    await fuzzer.close()
    await checker.close()
