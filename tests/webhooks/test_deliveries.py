"""Deliveries to a real HTTP receiver: signed, retried with backoff after a 500 and listed
as delivered; given up after the last try; a 4xx is final; deleting a webhook drops its
retries; one event is one delivery. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter

import pytest

from server.jobs.clock import ManualClock
from server.webhooks import events
from server.webhooks.signing import HEADER, verify
from tests.conftest import ADMIN
from tests.support.services import fresh_postgres_database
from tests.webhooks.conftest import T0, MakeNode, Received, Receiver


def signed_by(received: Received, secret: str, now: float) -> bool:
    return verify(secret, received.headers[HEADER], received.body, now)


async def test_a_500_is_retried_with_backoff_and_the_delivery_listed_as_delivered(
    make_node: MakeNode, receiver: Receiver, database_url: str
) -> None:
    node = await make_node(database_url=database_url, webhook_retry_seconds=20)
    hook = await node.hook(receiver.url(), ["pair.published"])
    secret = hook.pop("secret")
    assert secret.startswith("whsec_") and len(secret) > 40
    listed = (await node.ok("GET", "/api/v1/webhooks", ADMIN))["webhooks"]
    assert listed == [hook]  # the secret is shown once, at creation
    assert secret not in json.dumps(listed)
    receiver.script["/hook"] = [500, 200]

    pair = await node.pair(title="Ada & Bo")
    await node.run_jobs()
    (first,) = await receiver.take(1)
    assert signed_by(first, secret, T0)
    assert not signed_by(first, "whsec_another", T0)
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Pairwise-Event"] == "pair.published"
    body = first.json()
    assert body["type"] == "pair.published" and body["id"].startswith("evt_")
    assert body["pair"] == {
        "id": pair["id"],
        "title": "Ada & Bo",
        "members": [{"name": "Ada", "role": "mentor"}, {"name": "Bo", "role": "mentee"}],
    }
    assert body["links"]["console"] == f"https://pairwise.example.org/console#pair/{pair['id']}"
    assert body["text"] == "New mentoring pair: Ada & Bo — Ada (mentor), Bo (mentee)."
    [pending] = await node.deliveries(hook)
    assert pending["status"] == "pending" and pending["attempts"] == 1
    assert pending["status_code"] == 500 and pending["last_error"] == "HTTP 500"
    assert pending["next_attempt_at"] == T0 + 20
    assert pending["event_id"] == body["id"]

    node.clock.advance(19)
    await node.run_jobs()
    assert receiver.drained() == []  # not before its backoff
    node.clock.advance(1)
    await node.run_jobs()
    (second,) = await receiver.take(1)
    assert second.json() == body  # the same event, and the receiver can tell (its id)
    assert second.headers[HEADER] != first.headers[HEADER]  # signed again, at its own time
    assert signed_by(second, secret, T0 + 20) and not signed_by(second, secret, T0 + 20 + 301)
    [delivered] = await node.deliveries(hook)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 2
    assert delivered["status_code"] == 200 and delivered["last_error"] is None
    assert delivered["finished_at"] == T0 + 20 and delivered["next_attempt_at"] is None
    node.clock.advance(3600)
    await node.run_jobs()  # the hourly check among them
    assert receiver.drained() == []  # nothing is sent again


async def test_a_delivery_is_given_up_after_its_last_try_and_a_4xx_at_once(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node(webhook_max_attempts=3, webhook_retry_seconds=10)
    down = await node.hook(receiver.url("/down"), ["pair.published"])
    gone = await node.hook(receiver.url("/gone"), ["pair.published"])
    moved = await node.hook(receiver.url("/moved"), ["pair.published"])
    receiver.script["/down"] = [503] * 10
    receiver.script["/gone"] = [404] * 10
    receiver.script["/moved"] = [301] * 10
    await node.pair()
    await node.run_jobs()
    assert sorted(r.path for r in await receiver.take(3)) == ["/down", "/gone", "/moved"]
    for wait in (10, 20):  # 10 s, then twice that
        node.clock.advance(wait)
        await node.run_jobs()
        assert [r.path for r in await receiver.take(1)] == ["/down"]
    node.clock.advance(3600)
    await node.run_jobs()
    assert receiver.drained() == []  # three tries, no fourth
    [failed] = await node.deliveries(down)
    assert (failed["status"], failed["attempts"], failed["status_code"]) == ("failed", 3, 503)
    assert failed["last_error"] == "HTTP 503" and failed["next_attempt_at"] is None
    [refused] = await node.deliveries(gone)
    assert (refused["status"], refused["attempts"], refused["status_code"]) == ("failed", 1, 404)
    [redirected] = await node.deliveries(moved)
    assert (
        redirected["status"] == "failed"
        and "redirects are not followed" in (redirected["last_error"])
    )


async def test_a_receiver_that_is_not_there_is_tried_again(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node(webhook_retry_seconds=5)
    closed = f"http://127.0.0.1:{_closed_port()}/hook"
    hook = await node.hook(closed, ["pair.published"])
    await node.pair()
    await node.run_jobs()
    [pending] = await node.deliveries(hook)
    assert pending["status"] == "pending" and pending["status_code"] is None
    assert "Connect" in pending["last_error"], pending


async def test_a_receiver_that_does_not_answer_in_time_is_tried_again(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node(webhook_timeout_seconds=0.5, webhook_retry_seconds=5)
    hook = await node.hook(receiver.url("/slow"), ["pair.published"])
    receiver.hang.add("/slow")
    await node.pair()
    await node.run_jobs()  # returns once the client gave up waiting
    assert [r.path for r in await receiver.take(1)] == ["/slow"]
    [pending] = await node.deliveries(hook)
    assert pending["status"] == "pending" and pending["status_code"] is None
    assert pending["last_error"] == "no answer within 0.5 s"
    receiver.hang.clear()
    node.clock.advance(5)
    await node.run_jobs()
    await receiver.take(1)
    [delivered] = await node.deliveries(hook)
    assert delivered["status"] == "delivered" and delivered["attempts"] == 2


@pytest.mark.postgres
async def test_two_nodes_sharing_postgres_make_each_attempt_once(
    make_node: MakeNode, receiver: Receiver
) -> None:
    async with fresh_postgres_database() as url:
        clock = ManualClock(T0)
        a = await make_node(clock=clock, database_url=url, node_id="a", webhook_retry_seconds=10)
        b = await make_node(clock=clock, database_url=url, node_id="b", webhook_retry_seconds=10)
        hook = await a.hook(receiver.url(), ["pair.published"])
        receiver.script["/hook"] = [500, 200]
        for n in range(3):
            await a.pair(f"m{n}", f"e{n}", room=f"room-{n}")
        await asyncio.gather(a.run_jobs(), b.run_jobs())  # both poll at once
        first = await receiver.take(3)
        clock.advance(10)
        await asyncio.gather(a.run_jobs(), b.run_jobs())
        second = await receiver.take(1)
        clock.advance(3600)
        await asyncio.gather(a.run_jobs(), b.run_jobs())
        assert receiver.drained() == []
        ids = Counter(r.json()["id"] for r in first + second)
        assert sorted(ids.values()) == [1, 1, 2]  # the one that got the 500, tried again
        deliveries = await b.deliveries(hook)
        assert sorted((d["status"], d["attempts"]) for d in deliveries) == [
            ("delivered", 1),
            ("delivered", 1),
            ("delivered", 2),
        ]
        async with a.services.database.connect() as conn:
            hourly = (
                await conn.exec_driver_sql(
                    "SELECT count(*) FROM jobs WHERE kind = 'webhooks.hourly'"
                )
            ).scalar()
        assert hourly == 2  # the check that ran, and the next one: one each, not one a node


async def test_deleting_a_webhook_drops_its_retries(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node(webhook_retry_seconds=5)
    hook = await node.hook(receiver.url(), ["pair.published"])
    receiver.script["/hook"] = [500]
    await node.pair()
    await node.run_jobs()
    await receiver.take(1)
    await node.ok("DELETE", f"/api/v1/webhooks/{hook['id']}", ADMIN)
    status, _ = await node.call("GET", f"/api/v1/webhooks/{hook['id']}/deliveries", ADMIN)
    assert status == 404
    status, _ = await node.call("DELETE", f"/api/v1/webhooks/{hook['id']}", ADMIN)
    assert status == 404
    node.clock.advance(60)
    await node.run_jobs()
    assert receiver.drained() == []
    assert (await node.ok("GET", "/api/v1/webhooks", ADMIN))["webhooks"] == []


async def test_one_event_is_one_delivery_per_webhook(
    make_node: MakeNode, receiver: Receiver
) -> None:
    """Publishing a run again reports its pairs again; a webhook gets each pair once. A
    webhook that does not take the event gets nothing."""
    node = await make_node()
    hook = await node.hook(receiver.url("/a"), ["pair.published"])
    other = await node.hook(receiver.url("/b"), ["meeting.booked"])
    created = await node.pair()
    pair = await node.webhooks.pairs.get(created["id"])
    await node.webhooks.emit(events.pair_published(pair), events.pair_published(pair))
    await node.run_jobs()
    assert [r.path for r in await receiver.take(1)] == ["/a"]
    assert receiver.drained() == []
    assert len(await node.deliveries(hook)) == 1
    assert await node.deliveries(other) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
