"""The session-log parts a running server shares, built once from the database."""

from __future__ import annotations

from dataclasses import dataclass

from server.pairs.store import PairStore
from server.sessionlog.agenda import Agenda
from server.sessionlog.feedback import FeedbackBook
from server.sessionlog.goals import Goals
from server.sessionlog.privacy import Privacy
from server.sessionlog.recorder import SessionRecorder
from server.sessionlog.sessions import SessionLog
from server.store import Database


@dataclass(frozen=True)
class SessionLogService:
    database: Database
    pairs: PairStore
    recorder: SessionRecorder
    sessions: SessionLog
    agenda: Agenda
    goals: Goals
    feedback: FeedbackBook
    privacy: Privacy

    @classmethod
    def create(cls, database: Database) -> SessionLogService:
        pairs = PairStore(database)
        sessions = SessionLog(database)
        return cls(
            database=database,
            pairs=pairs,
            recorder=SessionRecorder(database, pairs),
            sessions=sessions,
            agenda=Agenda(database),
            goals=Goals(database),
            feedback=FeedbackBook(database, pairs, sessions),
            privacy=Privacy(database),
        )
