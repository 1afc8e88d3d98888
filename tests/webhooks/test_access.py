"""Who may register webhooks and read their deliveries (an admin or a programme manager,
nobody else), and where they may point: http(s) only, and not inside the server's network
unless the operator allows it, checked at registration and again on each connection."""

from __future__ import annotations

from typing import Any

import pytest

from server.webhooks.delivery import Sender, is_public
from tests.conftest import ADMIN
from tests.security.conftest import Target, target
from tests.security.test_route_access import session_of, with_session
from tests.webhooks.conftest import Receiver

__all__ = ["target"]  # the security suite's server, on SQLite and PostgreSQL


async def test_only_admins_and_managers_register_list_and_read_deliveries(
    target: Target, receiver: Receiver
) -> None:
    pair = await target.pair("ada", "bo")
    room = pair["room"]
    admin = with_session(target, await session_of(target, "root@example.org", "admin"))
    manager = with_session(target, await session_of(target, "mo@example.org", "manager"))
    viewer = with_session(target, await session_of(target, "vi@example.org", "viewer"))
    participant = with_session(
        target, await session_of(target, "ada@example.org", "participant", identity="ada")
    )
    # The target refuses loopback (the default), so a public address that is never called.
    body = {"url": "https://93.184.215.14/hook", "events": ["pair.published"], "format": "slack"}
    made = await target.ok("POST", "/api/v1/webhooks", manager, body)
    assert made["secret"].startswith("whsec_") and made["format"] == "slack"
    hook = made["id"]
    wrong: dict[str, dict[str, str]] = {
        "nobody": {},
        "a wrong admin key": {"Authorization": "Bearer not-the-admin-key-0123456789"},
        "a member's join token": target.bearer(target.token(room, "bo", "mentee")),
        "an observer's join token": target.bearer(target.token(room, "obs", "observer")),
        "a viewer": viewer,
        "a participant": participant,
    }
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/api/v1/webhooks", body),
        ("GET", "/api/v1/webhooks", None),
        ("GET", f"/api/v1/webhooks/{hook}/deliveries", None),
        ("DELETE", f"/api/v1/webhooks/{hook}", None),
    ]
    for name, headers in wrong.items():
        for method, path, payload in calls:
            status, answer, _ = await target.call(method, path, headers, payload)
            assert status in (401, 403), (name, method, path, status, answer)
    for headers in (ADMIN, admin, manager):
        listed = await target.ok("GET", "/api/v1/webhooks", headers)
        assert [h["id"] for h in listed["webhooks"]] == [hook]  # no wrong caller added one
        assert "secret" not in listed["webhooks"][0]
        assert (await target.ok("GET", f"/api/v1/webhooks/{hook}/deliveries", headers)) == {
            "webhook": listed["webhooks"][0],
            "deliveries": [],
        }
    status, _, _ = await target.call("DELETE", f"/api/v1/webhooks/{hook}", admin)
    assert status == 204
    # Who registered and deleted it is in the audit log.
    audit = await target.ok("GET", "/api/v1/privacy/audit", ADMIN)
    actions = [(e["actor"], e["action"]) for e in audit["entries"] if "webhook" in e["action"]]
    assert sorted(actions) == [
        ("mo@example.org", "webhook_create"),
        ("root@example.org", "webhook_delete"),
    ]


PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",  # a name that resolves to loopback
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4 loopback inside an IPv6 address
    "http://0.0.0.0/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://224.0.0.1/hook",
]
NOT_WEBHOOKS: list[dict[str, Any]] = [
    {"url": "ftp://93.184.215.14/hook", "events": ["pair.published"]},
    {"url": "file:///etc/passwd", "events": ["pair.published"]},
    {"url": "javascript:alert(1)", "events": ["pair.published"]},
    {"url": "//93.184.215.14/hook", "events": ["pair.published"]},
    {"url": "https://", "events": ["pair.published"]},
    {"url": "https://93.184.215.14/" + "a" * 2000, "events": ["pair.published"]},
    {"url": "https://93.184.215.14/hook", "events": []},
    {"url": "https://93.184.215.14/hook", "events": ["chat.message"]},
    {"url": "https://93.184.215.14/hook", "events": ["pair.quiet", "pair.quiet"]},
    {"url": "https://93.184.215.14/hook", "events": ["pair.quiet"], "format": "xml"},
    {"url": "https://93.184.215.14/hook", "events": ["pair.quiet"], "secret": "mine"},
]


async def test_a_private_target_or_what_is_no_webhook_is_refused(target: Target) -> None:
    """Without PAIRWISE_WEBHOOK_ALLOW_PRIVATE (the target's settings)."""
    for url in PRIVATE_URLS:
        body = {"url": url, "events": ["pair.published"]}
        status, answer, _ = await target.call("POST", "/api/v1/webhooks", ADMIN, body)
        assert status == 422, (url, answer)
        assert answer["error"]["code"] == "webhook_url_refused", (url, answer)
    for body in NOT_WEBHOOKS:
        status, answer, _ = await target.call("POST", "/api/v1/webhooks", ADMIN, body)
        assert status == 422, (body, answer)
    assert (await target.ok("GET", "/api/v1/webhooks", ADMIN))["webhooks"] == []
    good = {"url": "https://93.184.215.14/hook", "events": ["pair.quiet"]}
    assert (await target.ok("POST", "/api/v1/webhooks", ADMIN, good))["format"] == "json"


async def test_each_connection_is_checked_again(receiver: Receiver) -> None:
    """A name that resolved to a public address when the webhook was registered may point
    inside later (DNS rebinding): the client's own resolver refuses it, and an address
    literal is refused before connecting. The receiver listening there hears nothing."""
    sender = Sender(timeout_seconds=5, allow_private=False)
    port = receiver.base.rsplit(":", 1)[1]
    try:
        for url in (f"http://localhost:{port}/hook", f"http://127.0.0.1:{port}/hook"):
            outcome = await sender.send(url, b"{}", {})
            assert not outcome.delivered and not outcome.retry, outcome
            assert outcome.error is not None and outcome.error.startswith("refused:"), outcome
        assert receiver.drained() == []
        allowed = Sender(timeout_seconds=5, allow_private=True)
        try:
            assert (await allowed.send(receiver.url(), b"{}", {})).delivered
        finally:
            await allowed.close()
        assert len(receiver.drained()) == 1
    finally:
        await sender.close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("203.0.113.7", False),  # documentation range: not routable
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("fe80::1%eth0", False),
        ("ff02::1", False),
        ("not-an-address", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public
