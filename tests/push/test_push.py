"""Web push end to end through a push service the test runs on loopback: a participant
subscribes through the real route, a meeting reminder and new chat reach their browser
encrypted (decrypted here with http_ece) and signed with the server's VAPID key; a 410
deletes the subscription; each member's channel choices decide email and push; and no one
reads or changes another person's subscriptions or channels."""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from server.push.api import PUSH
from server.push.keys import FILENAME, load_or_create
from server.store.schema import chat_messages
from tests.conftest import ADMIN
from tests.push.conftest import T0, MakeSetup, PushService, Setup

SUBSCRIPTIONS = "/api/v1/home/push/subscriptions"
NOTIFICATIONS = "/api/v1/home/notifications"
CHANNELS = "/api/v1/home/notifications/channels"


async def book(setup: Setup, start: float) -> None:
    """Ada proposes, Bo accepts: the meeting's invites and reminders are scheduled."""
    meetings = setup.server.services.meetings
    assert meetings is not None
    proposed = await meetings.propose(
        setup.pair,
        "ada-1",
        title="Weekly",
        options=[datetime.fromtimestamp(start, UTC)],
        minutes=60,
        timezone="Europe/London",
    )
    await meetings.accept(proposed, setup.pair, "bo-2", 0)


async def say(setup: Setup, identity: str, name: str, text: str, ts: float) -> None:
    async with setup.server.services.database.begin() as conn:
        await conn.execute(
            insert(chat_messages).values(
                room="room-1", identity=identity, name=name, text=text,
                client_id=f"{identity}-{ts}", ts=ts,
            )
        )  # fmt: skip


def subjects(setup: Setup, to: str) -> list[str]:
    return [str(m["Subject"]) for m in setup.server.mailbox.messages if m["To"] == to]


async def test_a_reminder_and_new_chat_are_pushed_encrypted_and_signed_and_410_unsubscribes(
    make_setup: MakeSetup, push_service: PushService, database_url: str
) -> None:
    setup = await make_setup(database_url, push_allow_insecure=True)
    status, state = await setup.bo.call("POST", SUBSCRIPTIONS, push_service.subscription("bo"))
    assert status == 201, state
    assert state["subscriptions"] == 1
    assert state["channels"]["reminders"] == {"email": True, "push": True}
    # The key pair was made into the data dir, private to the server's user.
    key_file = setup.server.services.settings.data_dir / FILENAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    start = T0 + 86400
    await book(setup, start)
    await setup.run_jobs()  # the invites: mail only
    assert push_service.received == []
    setup.clock.now = start - 15 * 60
    await setup.run_jobs()

    assert push_service.errors == []
    (pushed,) = push_service.received
    assert pushed.payload == {
        "title": "Reminder: Weekly in 15 minutes",
        "body": "Starts in 15 minutes: Sun 3 Mar 2030, 12:00 (Europe/London)",
        "url": f"{setup.server.url}/me",
    }
    assert pushed.vapid_key == state["public_key"]
    assert pushed.vapid_claims["aud"] == f"http://127.0.0.1:{push_service.port}"
    assert pushed.vapid_claims["sub"] == "mailto:ops@pairwise.example.org"
    assert time.time() < pushed.vapid_claims["exp"] <= time.time() + 86400
    assert pushed.ttl == 15 * 60
    # Email stays on by default, for both.
    assert "Reminder: Weekly in 15 minutes" in subjects(setup, "bo@example.org")
    assert "Reminder: Weekly in 15 minutes" in subjects(setup, "ada@example.org")

    # New chat: who wrote, not what. The push service says the browser is gone: deleted.
    push_service.status["bo"] = 410
    await say(setup, "ada-1", "Ada", "my secret plans", setup.clock.now)
    setup.clock.now += 15 * 60
    await setup.run_jobs()
    assert push_service.errors == []
    assert push_service.received[-1].payload == {
        "title": "Pairwise",
        "body": "New message from Ada",
        "url": f"{setup.server.url}/me",
    }
    status, state = await setup.bo.call("GET", NOTIFICATIONS)
    assert state["subscriptions"] == 0
    jobs = setup.server.services.jobs
    assert jobs is not None
    assert {j.status for j in await jobs.store.recent("push.send")} == {"done"}

    # Nothing goes to a browser that is no longer subscribed.
    await say(setup, "ada-1", "Ada", "again", setup.clock.now)
    setup.clock.now += 2 * 3600
    await setup.run_jobs()
    assert len(push_service.received) == 2


async def test_each_member_s_channels_decide_email_and_push(
    make_setup: MakeSetup, push_service: PushService
) -> None:
    setup = await make_setup(push_allow_insecure=True)
    assert (await setup.bo.call("POST", SUBSCRIPTIONS, push_service.subscription("bo")))[0] == 201
    status, state = await setup.bo.call(
        "PUT",
        CHANNELS,
        {"reminders": {"email": True, "push": False}, "messages": {"email": False, "push": True}},
    )
    assert status == 200, state
    assert state["channels"] == {
        "reminders": {"email": True, "push": False},
        "messages": {"email": False, "push": True},
    }
    # Reminders: email only.
    start = T0 + 86400
    await book(setup, start)
    await setup.run_jobs()
    setup.clock.now = start - 15 * 60
    await setup.run_jobs()
    assert push_service.received == []
    assert "Reminder: Weekly in 15 minutes" in subjects(setup, "bo@example.org")

    # Messages: push only; Ada (no browser subscribed) still gets her email digest.
    await say(setup, "ada-1", "Ada", "private words", setup.clock.now)
    await say(setup, "bo-2", "Bo", "also private", setup.clock.now)
    setup.clock.now += 15 * 60
    await setup.run_jobs()
    assert push_service.errors == []
    assert [r.payload["body"] for r in push_service.received] == ["New message from Ada"]
    assert "private" not in str(push_service.received[0].payload)
    assert not any(s.startswith("Unread chat") for s in subjects(setup, "bo@example.org"))
    assert "Unread chat in Pairwise (1)" in subjects(setup, "ada@example.org")

    # Push off for messages too: nothing more reaches the browser.
    await setup.bo.call("PUT", CHANNELS, {"messages": {"email": False, "push": False}})
    await say(setup, "ada-1", "Ada", "more", setup.clock.now)
    setup.clock.now += 2 * 3600
    await setup.run_jobs()
    assert len(push_service.received) == 1
    assert not any(s.startswith("Unread chat") for s in subjects(setup, "bo@example.org"))


async def test_no_one_reads_or_changes_another_member_s_push(
    make_setup: MakeSetup, push_service: PushService
) -> None:
    setup = await make_setup()  # push_allow_insecure off
    server = setup.server
    bo_browser = push_service.subscription("bo")
    # Off: http and loopback endpoints are refused; so are keys that are not keys.
    for endpoint in (
        bo_browser["endpoint"],
        "https://127.0.0.1/push/x",
        "https://[::1]/x",
        "https://10.0.0.1/x",
        "ftp://push.example.org/x",
    ):
        status, error = await setup.bo.call(
            "POST", SUBSCRIPTIONS, {**bo_browser, "endpoint": endpoint}
        )
        assert status == 422, (endpoint, error)
    good = {**bo_browser, "endpoint": "https://push.example.org/send/abc"}
    for keys in ({"p256dh": "AAAA", "auth": good["keys"]["auth"]}, {**good["keys"], "auth": "x"}):
        assert (await setup.bo.call("POST", SUBSCRIPTIONS, {**good, "keys": keys}))[0] == 422
    status, state = await setup.bo.call("POST", SUBSCRIPTIONS, good)
    assert status == 201 and state["subscriptions"] == 1

    # Anonymous, the admin key, an operator signed in: refused on every route.
    await server.signin.accounts.create_operator("op@example.org", "admin")
    operator = await server.signed_in("op@example.org")
    anonymous = server.browser()
    routes = [
        ("GET", NOTIFICATIONS, None),
        ("PUT", CHANNELS, {"messages": {"email": False, "push": False}}),
        ("POST", SUBSCRIPTIONS, good),
        ("DELETE", SUBSCRIPTIONS, {"endpoint": good["endpoint"]}),
    ]
    try:
        for method, path, body in routes:
            assert (await anonymous.call(method, path, body))[0] == 401
            assert (await anonymous.call(method, path, body, headers=ADMIN))[0] == 403
            assert (await operator.call(method, path, body))[0] == 403
            if method != "GET":  # a cross-site form: no CSRF token
                assert (await setup.bo.call(method, path, body, with_csrf=False))[0] == 403
    finally:
        await operator.close()
        await anonymous.close()

    # Ada is another participant: she sees her own (none), cannot drop Bo's, and her
    # channel choices are hers.
    status, state = await setup.ada.call("GET", NOTIFICATIONS)
    assert state["subscriptions"] == 0
    status, dropped = await setup.ada.call("DELETE", SUBSCRIPTIONS, {"endpoint": good["endpoint"]})
    assert status == 200 and dropped["removed"] is False
    await setup.ada.call("PUT", CHANNELS, {"reminders": {"email": False, "push": False}})
    status, state = await setup.bo.call("GET", NOTIFICATIONS)
    assert state["subscriptions"] == 1
    assert state["channels"]["reminders"] == {"email": True, "push": True}
    # Bo drops his own.
    status, dropped = await setup.bo.call("DELETE", SUBSCRIPTIONS, {"endpoint": good["endpoint"]})
    assert dropped["removed"] is True and dropped["subscriptions"] == 0


async def test_many_browsers_keep_the_newest_and_the_key_survives_a_restart(
    make_setup: MakeSetup, push_service: PushService
) -> None:
    setup = await make_setup(push_allow_insecure=True, push_max_subscriptions=2)
    for name in ("one", "two", "three"):
        await setup.bo.call("POST", SUBSCRIPTIONS, push_service.subscription(name))
    store = setup.server.app[PUSH].store
    assert [s.endpoint.rsplit("/", 1)[1] for s in await store.of("bo-2")] == ["two", "three"]
    key = (await setup.bo.call("GET", NOTIFICATIONS))[1]["public_key"]
    assert load_or_create(setup.server.services.settings.data_dir).public_key == key


async def test_the_absent_member_s_note_is_pushed_with_who_is_waiting(
    make_setup: MakeSetup, push_service: PushService
) -> None:
    setup = await make_setup(push_allow_insecure=True)
    await setup.bo.call("POST", SUBSCRIPTIONS, push_service.subscription("bo"))
    await setup.bo.call("PUT", CHANNELS, {"reminders": {"email": False, "push": True}})
    start = T0 + 86400
    await book(setup, start)
    setup.clock.now = start - 15 * 60
    await setup.run_jobs()  # the invites and the 15-minute reminders
    setup.server.services.rooms.join("room-1", "ada-1", "Ada", "mentor", "sid-ada")
    setup.clock.now = start + 5 * 60
    await setup.run_jobs()
    assert push_service.errors == []
    assert [r.payload for r in push_service.received][-1] == {
        "title": "Ada is waiting for you: Weekly",
        "body": "Ada is in the room. Join now.",
        "url": f"{setup.server.url}/me",
    }
    assert len(push_service.received) == 2  # the reminder, the note
    bo_mail = subjects(setup, "bo@example.org")
    assert bo_mail == ["Invitation: Weekly"]  # reminders by email are off for Bo


async def test_a_push_service_s_redirect_is_not_followed(
    make_setup: MakeSetup, push_service: PushService
) -> None:
    setup = await make_setup(push_allow_insecure=True)
    await setup.bo.call("POST", SUBSCRIPTIONS, push_service.subscription("bo"))
    push_service.subscription("inside")
    push_service.redirect["bo"] = push_service.endpoint("inside")
    await say(setup, "ada-1", "Ada", "hello", setup.clock.now)
    setup.clock.now += 15 * 60
    await setup.run_jobs()
    assert [r.name for r in push_service.received] == ["bo"]  # never "inside"
    jobs = setup.server.services.jobs
    assert jobs is not None
    (job,) = await jobs.store.recent("push.send")
    assert job.status == "pending" and "redirected" in (job.last_error or "")
