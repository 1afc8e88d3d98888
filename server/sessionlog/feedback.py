"""Feedback after a session: each member rates it 1–5 once, with an optional comment.
Answering "not a good fit" flags the pair for the operator."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from server.errors import Conflict, Forbidden, InvalidInput
from server.pairs.model import Pair
from server.pairs.store import PairStore
from server.sessionlog.rows import clean_text, fetch_all, insert_id
from server.sessionlog.sessions import SessionLog
from server.store import Database
from server.store.schema import session_feedback

COMMENT_MAX_CHARS = 4000


@dataclass(frozen=True)
class Feedback:
    id: int
    session_id: int
    pair_id: str
    identity: str
    rating: int
    comment: str | None
    good_fit: bool
    created_at: float


class FeedbackBook:
    def __init__(self, database: Database, pairs: PairStore, sessions: SessionLog):
        self._db = database
        self._pairs = pairs
        self._sessions = sessions

    async def submit(
        self,
        pair: Pair,
        session_id: int,
        identity: str,
        rating: int,
        comment: str | None = None,
        good_fit: bool = True,
    ) -> Feedback:
        """Store one member's feedback on one session; a second answer is a Conflict."""
        if not pair.has_member(identity):
            raise Forbidden("only the pair's members give feedback on its sessions")
        if not 1 <= rating <= 5:
            raise InvalidInput("rating is a whole number from 1 to 5")
        if comment is not None and comment.strip():
            comment = clean_text(comment, "a comment", COMMENT_MAX_CHARS)
        else:
            comment = None
        session = await self._sessions.get(pair.id, session_id)
        now = time.time()
        try:
            async with self._db.begin() as conn:
                feedback_id = await insert_id(
                    conn,
                    insert(session_feedback).values(
                        session_id=session.id,
                        pair_id=pair.id,
                        identity=identity,
                        rating=rating,
                        comment=comment,
                        good_fit=good_fit,
                        created_at=now,
                    ),
                )
        except IntegrityError:
            raise Conflict(
                f"{identity!r} already gave feedback on session {session_id}",
                code="duplicate_feedback",
            ) from None
        if not good_fit:
            await self._pairs.flag(
                pair.id, f"not a good fit (said {identity} after session {session_id})"
            )
        return Feedback(feedback_id, session.id, pair.id, identity, rating, comment, good_fit, now)

    async def of_pair(self, pair_id: str) -> list[Feedback]:
        """The pair's feedback, all of it: who sees which is `privacy.sees_feedback`."""
        query = select(session_feedback).where(session_feedback.c.pair_id == pair_id)
        rows = await fetch_all(self._db, query.order_by(session_feedback.c.id))
        return [Feedback(**dict(r)) for r in rows]
