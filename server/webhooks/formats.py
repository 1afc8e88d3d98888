"""What a delivery sends: our own JSON, or a message a Slack or Microsoft Teams incoming
webhook posts in a channel. Each event reads as one sentence a person understands.

Nothing private goes out: no chat, no feedback comment, not who flagged a pair or why
(the sentence says it was flagged and the link opens the console, behind sign-in).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from server.pairs.model import Member, Pair
from server.webhooks.events import Event, EventType

TIME_FACTS = ("start", "started_at", "ended_at", "last_activity")
MODES = {"video": "video", "audio": "audio only", "text": "text chat", "phone": "the phone"}


class Format(StrEnum):
    JSON = "json"
    SLACK = "slack"
    TEAMS = "teams"


def console_link(base_url: str, pair_id: str) -> str:
    return f"{base_url}/console#pair/{pair_id}"


def _when(ts: float) -> str:
    return f"{datetime.fromtimestamp(ts, UTC):%a %d %b %Y, %H:%M} UTC"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def sentence(event: Event, pair: Pair | None) -> str:
    """The event in words, for a channel (and the `text` of our JSON)."""
    title = pair.title if pair is not None else "A pair that no longer exists"
    facts = event.facts
    match event.type:
        case EventType.PAIR_PUBLISHED:
            who = ", ".join(f"{m.name} ({m.role})" for m in _members(pair)) if pair else ""
            return f"New mentoring pair: {title}" + (f" — {who}." if who else ".")
        case EventType.MEETING_BOOKED:
            text = f"{title} booked a meeting: {_when(facts['start'])}, {facts['minutes']} minutes"
            if facts.get("every_weeks"):
                every = facts["every_weeks"]
                text += ", every week" if every == 1 else f", every {every} weeks"
                if facts.get("until"):
                    text += f" until {facts['until']}"
            return text + "."
        case EventType.MEETING_STARTED:
            return f"{title}'s meeting started."
        case EventType.MEETING_ENDED:
            minutes = max(0, round((facts["ended_at"] - facts["started_at"]) / 60))
            return f"{title}'s meeting ended after {minutes} minute{'s' * (minutes != 1)}."
        case EventType.FALLBACK_USED:
            step = f"from {MODES.get(facts['from'], facts['from'])} to {MODES.get(facts['to'], facts['to'])}"
            reason = f" ({facts['reason']})" if facts.get("reason") else ""
            return f"In {title}'s meeting, the {facts['role']} stepped down {step}{reason}."
        case EventType.FEEDBACK_FLAGGED:
            return f"{title} was flagged as maybe not a good fit: review the pair in the console."
        case EventType.PAIR_QUIET:
            days = facts["days_quiet"]
            if facts.get("last_activity") is None:
                return f"{title} have not met or written since they were paired, {days} days ago."
            return f"{title} have not met or written for {days} days."
    raise ValueError(f"no sentence for {event.type}")  # pragma: no cover - every type has one


def render(fmt: Format, event: Event, pair: Pair | None, base_url: str) -> bytes:
    """The body to POST, in the webhook's format."""
    text = sentence(event, pair)
    link = console_link(base_url, event.pair_id)
    payload: dict[str, Any]
    if fmt is Format.SLACK:
        payload = {"text": f"{_slack_escape(text)} <{link}|Open in Pairwise>"}
    elif fmt is Format.TEAMS:
        payload = _teams_card(text, link)
    else:
        payload = {
            "id": event.id,
            "type": str(event.type),
            "occurred_at": _iso(event.occurred_at),
            "text": text,
            "pair": _pair_json(event.pair_id, pair),
            "data": {
                key: _iso(value) if key in TIME_FACTS else value
                for key, value in event.facts.items()
            },
            "links": {"console": link},
        }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _pair_json(pair_id: str, pair: Pair | None) -> dict[str, Any]:
    if pair is None:
        return {"id": pair_id, "title": None, "members": []}
    return {
        "id": pair.id,
        "title": pair.title,
        "members": [{"name": m.name, "role": m.role} for m in _members(pair)],
    }


def _members(pair: Pair) -> list[Member]:
    """Mentors first, as people say it."""
    return sorted(pair.members, key=lambda m: m.role != "mentor")


def _slack_escape(text: str) -> str:
    """Slack reads `<...>` as links and mentions (`<!channel>` would ping everyone): the
    three characters it names are escaped, as its message formatting guide asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _teams_card(text: str, link: str) -> dict[str, Any]:
    """An Adaptive Card in a message, the shape Teams incoming webhooks (and the Workflows
    that replace Office 365 connectors) post."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": text, "wrap": True}],
                    "actions": [
                        {"type": "Action.OpenUrl", "title": "Open in Pairwise", "url": link}
                    ],
                },
            }
        ],
    }
