"""Red team: the bounded rate-limit buckets (server/signaling/ratelimit.py) forgot the
longest-idle key past their bound whatever it held, so a flood of new keys reset a
limit still in force: here, made-up email addresses (from rotated client addresses, or
one address as in this test) push a victim's per-email sign-in link limit out and the
victim's mailbox gets a fresh burst of links. A bucket is now forgotten only once it
has refilled; meanwhile new keys share one overflow bucket."""

from __future__ import annotations

from typing import Any

import pytest

from server.signaling import ratelimit
from tests.signin.conftest import SignInServer, mailbox, make_server  # noqa: F401 (fixtures)


async def ask(server: SignInServer, email: str) -> None:
    browser = server.browser()
    try:
        status, _ = await browser.call("POST", "/api/v1/signin/links", {"email": email})
        assert status == 202  # the same answer whether a link goes out or not
    finally:
        await browser.close()


async def test_made_up_addresses_do_not_reset_a_victims_link_limit(
    make_server: Any,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 3)  # the bound, small (10 000 in service)
    server = await make_server(database_url, signin_links_per_hour=2)  # 8 per client address
    await server.participant("vic", "vic@example.org", "Victim")
    await server.participant("sen", "sen@example.org", "Sentinel")

    await ask(server, "vic@example.org")
    await ask(server, "vic@example.org")
    await server.mailbox.wait_for(2)
    await ask(server, "vic@example.org")  # over the limit: silently no mail
    for made_up in ("a@example.net", "b@example.net", "c@example.net"):
        await ask(server, made_up)  # no account: no mail, but a bucket each
    await ask(server, "vic@example.org")  # the victim's limit must still hold
    await ask(server, "sen@example.org")  # a newcomer still gets through (overflow bucket)

    def recipients() -> list[str]:
        return [str(m["To"]) for m in server.mailbox.messages]

    while "sen@example.org" not in recipients():
        await server.mailbox.wait_for(len(server.mailbox.messages) + 1)
    assert recipients().count("vic@example.org") == 2, recipients()


def test_a_bucket_short_of_tokens_is_never_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same at the unit: past the bound only refilled buckets are forgotten."""
    now = [0.0]
    monkeypatch.setattr(ratelimit, "clock", lambda: now[0])
    monkeypatch.setattr(ratelimit, "MAX_TRACKED", 2)
    buckets = ratelimit.Buckets(per_minute=60, burst=1)  # one try, one a second
    assert buckets.get("victim").take()
    buckets.get("idle")  # full: may be forgotten
    for key in ("x1", "x2", "x3"):
        buckets.get(key).take()
    assert not buckets.get("victim").take(), "the victim's limit was forgotten"
    assert len(buckets) == 2
    now[0] += 1.0  # everything refilled: the idlest is forgotten again
    assert buckets.get("victim").take()
