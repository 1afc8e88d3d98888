"""Errors every layer speaks: a stable code, a human message, the HTTP status it maps to.

Adapters translate these to `{"error": {"code", "message"}}`; the domain raises them.
"""

from __future__ import annotations

from typing import Any


class PairwiseError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_wire(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(PairwiseError):
    code = "invalid_payload"
    status = 422


class Unauthorized(PairwiseError):
    code = "unauthorized"
    status = 401


class Forbidden(PairwiseError):
    code = "forbidden"
    status = 403


class NotFound(PairwiseError):
    code = "not_found"
    status = 404


class Conflict(PairwiseError):
    code = "conflict"
    status = 409


class RateLimited(PairwiseError):
    code = "rate_limited"
    status = 429


def wire_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
