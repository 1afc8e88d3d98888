"""Who may read what in the session log.

Members see their own pair's log, chat included, through a token for the pair's room;
they do not see what their partner said in feedback, nor why the pair was flagged.
Operators see logs and metrics of every pair, but chat text only when the program setting
`operators_read_chat` is on (off unless an operator turns it on), and every operator read
of a transcript is itself logged.

Every way out of the log (pair views, /me, feedback, exports) asks the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.errors import Forbidden
from server.pairs.model import Pair
from server.rooms.chat_privacy import ChatPrivacy, TranscriptRead
from server.store import Database

# What only operators see of a pair: "not a good fit (said X after session 2)".
OPERATOR_ONLY_PAIR_FIELDS = ("flagged", "flag_reason")


@dataclass(frozen=True)
class Viewer:
    """Who is asking: an operator (admin key) or a member (join token identity and room)."""

    operator: bool
    identity: str  # the member's identity, or the operator's label for the audit log
    room: str | None = None  # the room the member's token is for

    @classmethod
    def member(cls, identity: str, room: str) -> Viewer:
        return cls(False, identity, room)

    @classmethod
    def admin(cls, label: str = "operator") -> Viewer:
        return cls(True, label)


def is_pair_member(viewer: Viewer, pair: Pair) -> bool:
    """A member of this pair, with a token for this pair's room."""
    return not viewer.operator and viewer.room == pair.room and pair.has_member(viewer.identity)


def require_pair_access(viewer: Viewer, pair: Pair) -> None:
    if not viewer.operator and not is_pair_member(viewer, pair):
        raise Forbidden("only the pair's members and operators see this pair's log")


def require_member(viewer: Viewer, pair: Pair) -> None:
    """Writes to a pair's log (agenda, goals, notes, feedback) come from its members."""
    if not is_pair_member(viewer, pair):
        raise Forbidden("only the pair's members write to its log")


def sees_feedback(viewer: Viewer, given_by: str) -> bool:
    """Whether the viewer may see feedback `given_by` gave: a member sees only their own
    (rating, comment and good_fit are private from the partner); operators see all."""
    return viewer.operator or viewer.identity == given_by


def pair_fields(viewer: Viewer, fields: dict[str, Any]) -> dict[str, Any]:
    """A pair's fields as the viewer may see them: members do not see the flag."""
    if viewer.operator:
        return fields
    return {k: v for k, v in fields.items() if k not in OPERATOR_ONLY_PAIR_FIELDS}


class Privacy:
    """The session log's side of `ChatPrivacy`: reads by a Viewer, on one pair."""

    def __init__(self, database: Database):
        self.chat = ChatPrivacy(database)

    async def operators_read_chat(self) -> bool:
        return await self.chat.operators_read_chat()

    async def set_operators_read_chat(self, allowed: bool) -> None:
        await self.chat.set_operators_read_chat(allowed)

    async def may_read_chat(self, viewer: Viewer, pair: Pair) -> bool:
        require_pair_access(viewer, pair)
        return not viewer.operator or await self.operators_read_chat()

    async def audit(
        self,
        viewer: Viewer,
        *,
        purpose: str,
        granted: bool,
        messages: int,
        pair_id: str | None = None,
        session_id: int | None = None,
    ) -> None:
        """Log an operator's transcript read (members reading their own chat are not logged)."""
        if not viewer.operator:
            return
        await self.chat.audit(
            viewer.identity,
            purpose=purpose,
            granted=granted,
            messages=messages,
            pair_id=pair_id,
            session_id=session_id,
        )

    async def reads(self, limit: int = 200) -> list[TranscriptRead]:
        return await self.chat.reads(limit)
