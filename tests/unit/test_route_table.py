"""Who may call a route is decided where it is declared, and nowhere else.

`RouteTable.route` refuses a route that does not say (the guard enforces what it says, the
OpenAPI document states it: tests/security/test_route_access.py, test_route_roles.py), and
no handler looks at the caller's credentials by hand: a handler reads who called through
`server.api.access` (`member_of`, `participant_of`, `account_of`) and narrows to a pair's
members through `server.api.pair_access`.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server.api.access import Access
from server.api.http import RouteTable

SERVER = Path(__file__).resolve().parents[2] / "server"
# The modules that read a caller's credentials: the guard and the one pair check.
READERS = {SERVER / "api" / "access.py", SERVER / "api" / "pair_access.py"}
# Handlers that read the caller's account to show it, deciding nothing.
SHOWS_ONLY = {("console/api.py", "whoami")}


async def _handler(request: web.Request) -> web.Response:
    return web.json_response({})


def test_a_route_without_declared_access_does_not_register() -> None:
    table = RouteTable()
    undeclared: Any = table.route  # what mypy would refuse, tried anyway
    with pytest.raises(TypeError):
        undeclared("GET", "/api/v1/x", summary="x")(_handler)
    with pytest.raises(TypeError, match="declare who may call it"):
        undeclared("GET", "/api/v1/x", summary="x", access=None)(_handler)
    with pytest.raises(TypeError, match="declare who may call it"):
        undeclared("GET", "/api/v1/x", summary="x", access="admin")(_handler)
    assert table.endpoints == []
    table.route("GET", "/api/v1/x", summary="x", access=Access.VIEWER)(_handler)
    assert [(e.path, e.access) for e in table.endpoints] == [("/api/v1/x", Access.VIEWER)]


def _hand_reads(tree: ast.AST) -> list[tuple[str, int]]:
    """(function, line) of each read of `.token` or `.account` on what `caller_of` returned."""
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        callers = {
            target.id
            for node in ast.walk(func)
            if isinstance(node, ast.Assign) and _is_caller_of(node.value)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(func):
            if not (isinstance(node, ast.Attribute) and node.attr in ("token", "account")):
                continue
            value = node.value
            if _is_caller_of(value) or (isinstance(value, ast.Name) and value.id in callers):
                found.append((func.name, node.lineno))
    return found


def _is_caller_of(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "caller_of"
    )


def test_no_handler_reads_credentials_by_hand() -> None:
    reads = {
        (str(path.relative_to(SERVER)), name, line)
        for path in SERVER.rglob("*.py")
        if path not in READERS
        for name, line in _hand_reads(ast.parse(path.read_text(), str(path)))
    }
    by_hand = {r for r in reads if (r[0], r[1]) not in SHOWS_ONLY}
    assert not by_hand, f"read who called through server.api.access instead: {sorted(by_hand)}"
    assert {(r[0], r[1]) for r in reads} == SHOWS_ONLY  # the exception is still needed


def test_the_check_finds_a_hand_read() -> None:
    source = (
        "def handler(request):\n"
        "    caller = caller_of(request)\n"
        "    if caller.token is None:\n"
        "        raise Forbidden('no')\n"
        "    return caller_of(request).account\n"
    )
    assert sorted(_hand_reads(ast.parse(source))) == [("handler", 3), ("handler", 5)]
