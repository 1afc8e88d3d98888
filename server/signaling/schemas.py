"""The payloads clients send, validated before anything else sees them.

docs/protocol.md describes the same events for client authors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.api.http import MAX_ID


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JoinIn(Payload):
    media_mode: Literal["video", "audio", "text"] = "text"


class ChatIn(Payload):
    # Length beyond the room's limit is checked by the domain so the error names the limit.
    text: str = Field(min_length=1, max_length=100_000)
    client_id: str = Field(min_length=1, max_length=100)


class HistoryIn(Payload):
    before: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int | None = Field(None, ge=1, le=200)


class TypingIn(Payload):
    typing: bool


class ReadIn(Payload):
    up_to: int = Field(ge=1, le=MAX_ID)


class PresenceIn(Payload):
    presence: Literal["online", "away"]


class MediaModeIn(Payload):
    mode: Literal["video", "audio", "text"]
    reason: str = Field("client", min_length=1, max_length=200)
    # The person chose it (audio-only, text): recorded as a choice, never as a fallback.
    choice: bool = False


class Empty(Payload):
    pass


class ReactionIn(Payload):
    # A fixed set (web/client/reactions.js draws each): nothing a client writes is shown to
    # the others as a reaction.
    reaction: Literal["thumbs_up", "clap", "heart", "laugh", "surprised", "thinking"]


class HandIn(Payload):
    raised: bool
