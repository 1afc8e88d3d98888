"""Red team against webhooks: what a participant can make the server say in an operators'
channel. A media step's `reason` is whatever the member's client sends (up to 200
characters); `fallback.used` put it into the sentence a Slack or Teams channel shows and
into the JSON's `data`, so a mentee could post "re-enter your password at https://..."
to every operator, signed by Pairwise. docs/webhooks.md: no text a member writes is sent."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN
from tests.security.conftest import Target, target  # noqa: F401
from tests.support.participants import SocketParticipant
from tests.webhooks.conftest import MakeNode, Receiver, make_node, receiver  # noqa: F401

LURE = "Urgent: your Pairwise session expired, sign in again at https://evil.example/login"


async def test_a_members_own_words_as_a_media_reason_reach_no_channel(
    make_node: MakeNode,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    node = await make_node(background=True)
    await node.hook(receiver.url("/slack"), ["fallback.used"], "slack")
    await node.hook(receiver.url("/json"), ["fallback.used"], "json")
    await node.hook(receiver.url("/teams"), ["fallback.used"], "teams")
    await node.pair("ada", "bo")
    token = node.services.tokens.issue("room-1", "bo", "Bo", "mentee")[0]
    bo = await SocketParticipant(str(node.client.make_url("/")), token).connect()
    try:
        joined: Any = await bo.call("join", {"media_mode": "video"})
        assert "error" not in joined, joined
        answer = await bo.call("media_mode", {"mode": "text", "reason": LURE})
        assert answer == {"mode": "text"}, answer
        got = {r.path: r for r in await receiver.take(3)}
    finally:
        await bo.sio.disconnect()
    for path in ("/slack", "/json", "/teams"):
        body = got[path].body.decode()
        assert "stepped down from video to text chat" in body, body  # the event still goes
        assert "evil.example" not in body and "sign in again" not in body, (path, body)
    assert got["/json"].json()["data"]["reason"] is None


async def test_a_reason_code_still_says_why(
    make_node: MakeNode,  # noqa: F811
    receiver: Receiver,  # noqa: F811
) -> None:
    """The codes the media path sends (ice_failed, camera_unavailable) are kept."""
    node = await make_node(background=True)
    await node.hook(receiver.url("/json"), ["fallback.used"], "json")
    await node.pair("ada", "bo")
    token = node.services.tokens.issue("room-1", "bo", "Bo", "mentee")[0]
    bo = await SocketParticipant(str(node.client.make_url("/")), token).connect()
    try:
        await bo.call("join", {"media_mode": "video"})
        await bo.call("media_mode", {"mode": "audio", "reason": "camera_unavailable"})
        (got,) = await receiver.take(1)
    finally:
        await bo.sio.disconnect()
    assert got.json()["data"]["reason"] == "camera_unavailable"
    assert "(camera_unavailable)" in got.json()["text"]


# IPv6 ranges that carry an IPv4 address or are not routed on the internet, which this
# Python's `is_global` took for global: a local-use NAT64 gateway (RFC 8215) turns
# 64:ff9b:1::a00:5 into 10.0.0.5 inside the network.
NOT_GLOBAL_V6 = [
    "http://[64:ff9b:1::a00:5]/hook",  # local-use NAT64 onto 10.0.0.5
    "http://[64:ff9b:1::7f00:1]/hook",  # ... onto 127.0.0.1
    "http://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated)
    "http://[::ffff:0:127.0.0.1]/hook",  # IPv4-translated (SIIT)
    "http://[3fff::1]/hook",  # documentation (RFC 9637)
    "http://[5f00::1]/hook",  # segment routing SIDs (RFC 9602)
]


async def test_ipv6_forms_of_inside_addresses_are_refused(target: Target) -> None:  # noqa: F811
    """Without PAIRWISE_WEBHOOK_ALLOW_PRIVATE (the security target's settings)."""
    for url in NOT_GLOBAL_V6:
        body = {"url": url, "events": ["pair.published"]}
        status, answer, _ = await target.call("POST", "/api/v1/webhooks", ADMIN, body)
        assert status == 422, (url, answer)
        assert answer["error"]["code"] == "webhook_url_refused", (url, answer)
    assert (await target.ok("GET", "/api/v1/webhooks", ADMIN))["webhooks"] == []
