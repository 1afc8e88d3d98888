"""Each event from where it happens to a real receiver: a meeting booked by its members, a
pair's meeting started and ended and a fallback used (from the room event bus), a pair
flagged through feedback (saying nothing private), a pair going quiet (the hourly check,
once per quiet spell); and the Slack and Teams shapes of a message."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from server.jobs.clock import ManualClock
from server.rooms.events import MediaModeChanged, SessionEnded, SessionStarted
from server.webhooks.signing import HEADER, verify
from tests.conftest import ADMIN
from tests.webhooks.conftest import PUBLIC_URL, T0, MakeNode, Node, Receiver

DAY = 86400.0


async def _pair(node: Node, title: str | None = None) -> dict[str, Any]:
    """Identities that are not names, so a body that carried one would show it."""
    members = [
        {"identity": "id-7731", "name": "Ada", "role": "mentor"},
        {"identity": "id-9045", "name": "Bo", "role": "mentee"},
    ]
    body: dict[str, Any] = {"members": members, "room": "room-1"}
    if title is not None:
        body["title"] = title
    return dict(await node.ok("POST", "/api/v1/pairs", ADMIN, body))


async def test_a_booked_meeting_is_announced(make_node: MakeNode, receiver: Receiver) -> None:
    node = await make_node()
    await node.hook(receiver.url(), ["meeting.booked"])
    pair = await _pair(node)
    base = f"/api/v1/pairs/{pair['id']}/meetings"
    start = datetime.fromtimestamp(T0 + 2 * DAY, UTC)  # Monday 4 March 2030, 12:00 UTC
    proposed = await node.ok(
        "POST",
        base,
        node.member("room-1", "id-7731", "mentor"),
        {"title": "About my divorce", "times": [start.isoformat()], "minutes": 45,
         "timezone": "Europe/London", "every_weeks": 2, "until": "2030-04-30"},
    )  # fmt: skip
    await node.run_jobs()
    assert receiver.drained() == []  # proposed is not booked
    booked = await node.ok(
        "POST", f"{base}/{proposed['id']}/accept", node.member("room-1", "id-9045"), {"option": 0}
    )
    await node.run_jobs()
    (got,) = await receiver.take(1)
    body = got.json()
    assert body["type"] == "meeting.booked"
    assert body["data"] == {
        "meeting_id": booked["id"],
        "start": "2030-03-04T12:00:00+00:00",
        "minutes": 45,
        "every_weeks": 2,
        "until": "2030-04-30",
    }
    assert body["text"] == (
        "Ada & Bo booked a meeting: Mon 04 Mar 2030, 12:00 UTC, 45 minutes,"
        " every 2 weeks until 2030-04-30."
    )
    assert "divorce" not in got.body.decode()  # a title the members wrote stays theirs


async def test_a_pairs_meeting_and_its_fallback_come_from_the_room_bus(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node(background=True)
    hook = await node.hook(
        receiver.url(), ["meeting.started", "meeting.ended", "fallback.used"], "slack"
    )
    pair = await _pair(node)
    link = f"<{PUBLIC_URL}/console#pair/{pair['id']}|Open in Pairwise>"
    bus = node.services.bus
    began = time.time()
    bus.publish(SessionStarted("an-ad-hoc-room"))  # no pair's room: no pair's meeting
    bus.publish(SessionStarted("room-1", ts=began))
    bus.publish(  # the member chose text: not a fallback
        MediaModeChanged("room-1", identity="id-9045", mode="text", previous="video",
                         reason="choice: text", choice=True)
    )  # fmt: skip
    bus.publish(
        MediaModeChanged("room-1", identity="id-9045", mode="audio", previous="video",
                         reason="ice_failed")
    )  # fmt: skip
    bus.publish(SessionEnded("room-1", started_at=began, ts=began + 1800))
    texts = sorted(r.json()["text"] for r in await receiver.take(3))
    assert texts == [
        f"Ada &amp; Bo's meeting ended after 30 minutes. {link}",
        f"Ada &amp; Bo's meeting started. {link}",
        f"In Ada &amp; Bo's meeting, the mentee stepped down from video to audio only"
        f" (ice_failed). {link}",
    ]
    deliveries = await node.deliveries(hook)
    assert sorted(d["event"] for d in deliveries) == [
        "fallback.used",
        "meeting.ended",
        "meeting.started",
    ]
    assert {d["status"] for d in deliveries} == {"delivered"}


async def test_a_flag_says_only_that_the_pair_was_flagged(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node()
    json_hook = await node.hook(receiver.url("/json"), ["feedback.flagged"])
    await node.hook(receiver.url("/slack"), ["feedback.flagged"], "slack")
    await node.hook(receiver.url("/teams"), ["feedback.flagged"], "teams")
    pair = await _pair(node)
    log = node.services.sessionlog
    assert log is not None
    await log.recorder(SessionStarted("room-1", ts=T0 - 3600))
    await log.recorder(SessionEnded("room-1", started_at=T0 - 3600, ts=T0 - 1800))
    [summary] = await log.sessions.of_pair(pair["id"])
    path = f"/api/v1/pairs/{pair['id']}/sessions/{summary.session.id}/feedback"
    good = {"rating": 4, "comment": "Lovely, thanks", "good_fit": True}
    await node.ok("POST", path, node.member("room-1", "id-7731", "mentor"), good)
    await node.run_jobs()
    assert receiver.drained() == []  # a good fit flags nothing
    bad = {"rating": 1, "comment": "He keeps asking about my salary", "good_fit": False}
    await node.ok("POST", path, node.member("room-1", "id-9045"), bad)
    await node.run_jobs()
    got = {r.path: r for r in await receiver.take(3)}
    for received in got.values():
        text = received.body.decode()
        for private in ("salary", "Lovely", "id-9045", "id-7731", "rating", "after session"):
            assert private not in text, (received.path, private)
    body = got["/json"].json()
    assert body["type"] == "feedback.flagged" and body["data"] == {}
    assert body["text"] == (
        "Ada & Bo was flagged as maybe not a good fit: review the pair in the console."
    )
    link = f"{PUBLIC_URL}/console#pair/{pair['id']}"
    assert body["links"] == {"console": link}
    secret = json_hook["secret"]
    assert all(verify(secret, r.headers[HEADER], r.body, T0) for r in [got["/json"]])
    assert got["/slack"].json() == {"text": f"{_slack(body['text'])} <{link}|Open in Pairwise>"}
    assert got["/teams"].json() == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": body["text"], "wrap": True}],
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Open in Pairwise", "url": link}
                    ],
                },
            }
        ],
    }


async def test_slack_cannot_be_made_to_ping_everyone_by_a_title(
    make_node: MakeNode, receiver: Receiver
) -> None:
    node = await make_node()
    await node.hook(receiver.url(), ["pair.published"], "slack")
    await _pair(node, title="<!channel> <https://evil.example|Ada> & Bo")
    await node.run_jobs()
    (got,) = await receiver.take(1)
    text = got.json()["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert text.startswith("New mentoring pair: &lt;!channel&gt; &lt;https://evil.example|Ada&gt;")


async def test_a_quiet_pair_is_told_once_per_quiet_spell(
    make_node: MakeNode, receiver: Receiver
) -> None:
    now = time.time()  # pairs are created on the wall clock
    node = await make_node(clock=ManualClock(now), webhook_quiet_days=14)
    await node.hook(receiver.url(), ["pair.quiet"])
    pair = await _pair(node)
    node.clock.advance(13 * DAY)
    await node.run_jobs()
    assert receiver.drained() == []  # 13 days is not quiet yet
    node.clock.advance(2 * DAY + 60)
    await node.run_jobs()
    (got,) = await receiver.take(1)
    body = got.json()
    assert body["type"] == "pair.quiet" and body["pair"]["id"] == pair["id"]
    assert body["data"] == {"days_quiet": 15, "last_activity": None}
    assert body["text"] == "Ada & Bo have not met or written since they were paired, 15 days ago."
    for _ in range(3):  # the hourly check keeps running; the spell is the same
        node.clock.advance(3600)
        await node.run_jobs()
    assert receiver.drained() == []


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
