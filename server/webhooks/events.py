"""The events a webhook can take, and how each is built from what happened.

An event holds only facts that name nobody (ids, times, a media step, a count of days):
it is stored with each delivery until it is sent, and the pair's title and members are
read when it is sent, so an erasure in between leaves no name behind in the database.
Its `key` names the happening: a webhook gets one delivery per key however often the
happening is reported (publishing a run again, the quiet check running every hour).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from server.meetings.model import Meeting
from server.pairs.model import Pair
from server.rooms.events import MediaModeChanged, SessionEnded, SessionStarted
from server.sessionlog.program_health import QuietPair

# A media step's reason as the media path names it (ice_failed, camera_unavailable). The
# member's client sends the reason, so anything else may be words the member wrote.
REASON_CODE = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")
REASON_MAX_CHARS = 40


class EventType(StrEnum):
    PAIR_PUBLISHED = "pair.published"
    MEETING_BOOKED = "meeting.booked"
    MEETING_STARTED = "meeting.started"
    MEETING_ENDED = "meeting.ended"
    FALLBACK_USED = "fallback.used"
    FEEDBACK_FLAGGED = "feedback.flagged"
    PAIR_QUIET = "pair.quiet"


@dataclass(frozen=True)
class Event:
    type: EventType
    key: str
    pair_id: str
    occurred_at: float
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The same for every webhook that gets it, and on every retry: a receiver that
        got it already can tell."""
        return "evt_" + hashlib.sha256(self.key.encode()).hexdigest()[:24]


def pair_published(pair: Pair) -> Event:
    return Event(EventType.PAIR_PUBLISHED, f"pair.published:{pair.id}", pair.id, pair.created_at)


def meeting_booked(meeting: Meeting, now: float) -> Event:
    assert meeting.start_utc is not None, "a booked meeting has its start"
    return Event(
        EventType.MEETING_BOOKED,
        f"meeting.booked:{meeting.id}:{meeting.sequence}",
        meeting.pair_id,
        now,
        {
            "meeting_id": meeting.id,
            "start": meeting.start_utc,
            "minutes": meeting.minutes,
            "every_weeks": meeting.every_weeks,
            "until": meeting.until.isoformat() if meeting.until else None,
        },
    )


def meeting_started(pair: Pair, event: SessionStarted) -> Event:
    return Event(
        EventType.MEETING_STARTED,
        f"meeting.started:{pair.id}:{event.ts:.3f}",
        pair.id,
        event.ts,
        {"started_at": event.ts},
    )


def meeting_ended(pair: Pair, event: SessionEnded) -> Event:
    return Event(
        EventType.MEETING_ENDED,
        f"meeting.ended:{pair.id}:{event.started_at:.3f}",
        pair.id,
        event.ts,
        {"started_at": event.started_at, "ended_at": event.ts},
    )


def fallback_used(pair: Pair, event: MediaModeChanged) -> Event:
    """A step down the ladder, told by the member's role, never their identity; its
    reason only when it is a code (a client may send any text as the reason, and a channel
    would show it as Pairwise's words)."""
    reason = event.reason if _is_reason_code(event.reason) else None
    role = next((m.role for m in pair.members if m.identity == event.identity), "participant")
    return Event(
        EventType.FALLBACK_USED,
        # Identities are not stored here; the step, its moment and the role tell steps apart.
        f"fallback.used:{pair.id}:{event.ts:.6f}:{role}:{event.previous}:{event.mode}",
        pair.id,
        event.ts,
        {"role": role, "from": event.previous, "to": event.mode, "reason": reason},
    )


def _is_reason_code(reason: str | None) -> bool:
    return (
        reason is not None
        and len(reason) <= REASON_MAX_CHARS
        and REASON_CODE.fullmatch(reason) is not None
    )


def feedback_flagged(pair: Pair, feedback_id: int, now: float) -> Event:
    """Only that the pair was flagged: not who said so, not what else they wrote."""
    return Event(
        EventType.FEEDBACK_FLAGGED, f"feedback.flagged:{pair.id}:{feedback_id}", pair.id, now
    )


def pair_quiet(quiet: QuietPair, now: float) -> Event:
    """Once per quiet spell: a meeting or a message starts a new one."""
    since = "never" if quiet.last_activity is None else f"{quiet.last_activity:.3f}"
    return Event(
        EventType.PAIR_QUIET,
        f"pair.quiet:{quiet.pair_id}:{since}",
        quiet.pair_id,
        now,
        {"days_quiet": int(quiet.days_quiet), "last_activity": quiet.last_activity},
    )
