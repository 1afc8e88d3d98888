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
    """How a participant takes part, best first (`FALLBACK_ORDER`)."""

    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    PHONE = "phone"


# The fallback ladder, best first (DESIGN.md): a move to a later mode is a step down, which
# the session log counts as a fallback unless the participant chose it.
FALLBACK_ORDER = (MediaMode.VIDEO, MediaMode.AUDIO, MediaMode.TEXT, MediaMode.PHONE)
# The rungs the server moves a browser between by itself; the phone, last, is a move only
# the person makes (dialling in).
LADDER = FALLBACK_ORDER[: FALLBACK_ORDER.index(MediaMode.PHONE)]

# How the session log marks a step the participant chose (audio-only, text, closing
# media, camera off): its reason starts with this. A choice is never a fallback, so
# program health and the session summary leave it out of the fallback counts.
CHOICE_PREFIX = "choice: "


def choice_reason(reason: str) -> str:
    """The stored reason of a participant's own choice."""
    return reason if is_choice(reason) else CHOICE_PREFIX + reason


def is_choice(reason: str | None) -> bool:
    return reason is not None and reason.startswith(CHOICE_PREFIX)


def is_step_down(previous: str, mode: str) -> bool:
    """Whether going from `previous` to `mode` goes down the fallback ladder."""
    if previous not in FALLBACK_ORDER or mode not in FALLBACK_ORDER:
        return False
    return FALLBACK_ORDER.index(MediaMode(mode)) > FALLBACK_ORDER.index(MediaMode(previous))


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
