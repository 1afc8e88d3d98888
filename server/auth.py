"""The admin API key for operators, and join tokens (JWT, HS256) for participants."""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from server.errors import Forbidden, Unauthorized


class Role(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"
    OBSERVER = "observer"
    OPERATOR = "operator"


class Grant(StrEnum):
    CHAT = "chat"
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    MODERATE = "moderate"


GRANTS: dict[Role, frozenset[Grant]] = {
    Role.MENTOR: frozenset({Grant.CHAT, Grant.PUBLISH, Grant.SUBSCRIBE}),
    Role.MENTEE: frozenset({Grant.CHAT, Grant.PUBLISH, Grant.SUBSCRIBE}),
    # An observer watches and reads; whether they may write depends on the room.
    Role.OBSERVER: frozenset({Grant.SUBSCRIBE}),
    Role.OPERATOR: frozenset({Grant.CHAT, Grant.PUBLISH, Grant.SUBSCRIBE, Grant.MODERATE}),
}

_ISSUER = "pairwise"


@dataclass(frozen=True)
class JoinToken:
    """What a verified join token says about its bearer."""

    room: str
    identity: str
    name: str
    role: Role
    expires_at: int
    token_id: str
    issued_at: int = 0

    def can(self, grant: Grant) -> bool:
        return grant in GRANTS[self.role]

    def require(self, grant: Grant) -> None:
        if not self.can(grant):
            raise Forbidden(f"role {self.role} may not {grant}")


class TokenIssuer:
    def __init__(
        self, secret: str, default_ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._default_ttl = default_ttl
        self.clock = clock  # what `iat` and `exp` count from (a test moves it)

    def issue(
        self, room: str, identity: str, name: str, role: Role, ttl_seconds: int | None = None
    ) -> tuple[str, JoinToken]:
        now = int(self.clock())
        claims = JoinToken(
            room=room,
            identity=identity,
            name=name,
            role=Role(role),
            expires_at=now + (ttl_seconds or self._default_ttl),
            token_id=uuid.uuid4().hex,
            issued_at=now,
        )
        payload: dict[str, Any] = {
            "iss": _ISSUER,
            "iat": now,
            "exp": claims.expires_at,
            "jti": claims.token_id,
            "room": room,
            "sub": identity,
            "name": name,
            "role": str(claims.role),
        }
        return jwt.encode(payload, self._secret, algorithm="HS256"), claims

    def verify(self, token: object) -> JoinToken:
        """Decode a join token or raise Unauthorized with the reason (expired, invalid)."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("a join token is required", code="token_missing")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the join token has expired", code="token_expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the join token is invalid: {exc}", code="token_invalid") from None
        try:
            return JoinToken(
                room=str(payload["room"]),
                identity=str(payload["sub"]),
                name=str(payload["name"]),
                role=Role(payload["role"]),
                expires_at=int(payload["exp"]),
                token_id=str(payload["jti"]),
                issued_at=int(payload["iat"]),
            )
        except (KeyError, ValueError):
            raise Unauthorized(
                "the join token is invalid: bad claims", code="token_invalid"
            ) from None


def is_admin_key(expected: str, given: str) -> bool:
    """Whether `given` is the admin key, compared in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())
