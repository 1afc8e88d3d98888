"""Rooms and the people in them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class MediaMode(StrEnum):
    """The fallback ladder, best first: video → audio → text; phone is its own path."""

    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    PHONE = "phone"


LADDER = (MediaMode.VIDEO, MediaMode.AUDIO, MediaMode.TEXT)

# How the session log marks a step the participant chose (audio-only, text, closing
# media, camera off): its reason starts with this. A choice is never a fallback, so
# program health and the session summary leave it out of the fallback counts.
CHOICE_PREFIX = "choice: "


def choice_reason(reason: str) -> str:
    """The stored reason of a participant's own choice."""
    return reason if is_choice(reason) else CHOICE_PREFIX + reason


def is_choice(reason: str | None) -> bool:
    return reason is not None and reason.startswith(CHOICE_PREFIX)


def step_down(mode: MediaMode) -> MediaMode:
    if mode not in LADDER:
        return mode
    return LADDER[min(LADDER.index(mode) + 1, len(LADDER) - 1)]


@dataclass
class Participant:
    identity: str
    name: str
    role: str
    connection: str  # the adapter's id for the live connection (a Socket.IO sid, a SIP call id)
    media_mode: MediaMode = MediaMode.TEXT
    presence: Presence = Presence.ONLINE
    joined_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "name": self.name,
            "role": self.role,
            "presence": str(self.presence),
            "media_mode": str(self.media_mode),
            "joined_at": self.joined_at,
        }


@dataclass
class Room:
    name: str
    capacity: int
    started_at: float = field(default_factory=time.time)
    participants: dict[str, Participant] = field(default_factory=dict)
    # Whether observers may write in chat: a room setting, off by default.
    observers_may_chat: bool = False

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "capacity": self.capacity, "started_at": self.started_at}
