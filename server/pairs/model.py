"""A mentoring pair and its members, as read from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PairStatus(StrEnum):
    """An active pair's room is open; an unpublished one (ended or rematched) is closed."""

    ACTIVE = "active"
    UNPUBLISHED = "unpublished"


@dataclass(frozen=True)
class Member:
    identity: str
    name: str
    role: str  # mentor | mentee


@dataclass(frozen=True)
class Pair:
    id: str
    room: str
    title: str
    status: PairStatus
    source: str
    flagged: bool
    flag_reason: str | None
    created_at: float
    members: tuple[Member, ...] = field(default=())

    def has_member(self, identity: str) -> bool:
        return any(m.identity == identity for m in self.members)
