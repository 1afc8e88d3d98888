"""What every REST handler shares: JSON errors, body validation, and a route table that
declares who may call each route (checked by `access.guard`) and feeds the OpenAPI document."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.api.access import Access, Handler, guard
from server.errors import InvalidInput, NotFound, PairwiseError, wire_error

log = logging.getLogger("pairwise.http")

M = TypeVar("M", bound=BaseModel)
NESTED_TOO_DEEPLY = "the input is nested too deeply"
# Ids are 64-bit integers in the databases, which refuse a larger one rather than find nothing.
MAX_ID = 2**63 - 1


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass
class RouteTable:
    """Routes declared once: aiohttp gets the handlers, OpenAPI gets the models."""

    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        access: Access,
        status: int = 200,
        errors: tuple[int, ...] = (),
        tags: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a route and who may call it: `access` is the only place that is decided
        (`access.guard` enforces it before the handler runs, the OpenAPI document states it).
        A route without one does not register."""
        if not isinstance(access, Access):
            raise TypeError(f"{method} {path}: declare who may call it (access=Access.<kind>)")

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method, path, handler, summary, access, body, response, status, errors, tags
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(
                endpoint.method, endpoint.path, guard(endpoint.handler, endpoint.access)
            )


def json_response(
    payload: BaseModel | dict[str, Any] | list[Any], status: int = 200
) -> web.Response:
    if isinstance(payload, BaseModel):
        return web.json_response(text=payload.model_dump_json(), status=status)
    return web.json_response(payload, status=status)


def error_response(code: str, message: str, status: int) -> web.Response:
    return web.json_response(wire_error(code, message), status=status)


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body; any problem is InvalidInput naming the field."""
    try:
        raw = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from None
    except RecursionError:
        raise InvalidInput(NESTED_TOO_DEEPLY, code="invalid_json") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


def path_id(request: web.Request, name: str) -> int:
    """The whole-number id `name` of the path: 404 if it is not one, 422 beyond `MAX_ID`."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()):
        raise NotFound(f"no {name.removesuffix('_id')} {raw!r}")
    if len(raw) > len(str(MAX_ID)) or int(raw) > MAX_ID:
        raise InvalidInput(f"{name} is at most {MAX_ID}")
    return int(raw)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"}}`, never a stack trace."""
    try:
        return await handler(request)
    except PairwiseError as exc:
        return error_response(exc.code, exc.message, exc.status)
    except RecursionError:  # a parser (JSON, YAML, CSV) given input nested too deeply
        return error_response("invalid_payload", NESTED_TOO_DEEPLY, 422)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        return error_response(code, exc.reason, exc.status)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response("internal", "internal server error", 500)
