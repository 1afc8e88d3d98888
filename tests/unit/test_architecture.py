"""The shape of the code, checked: the domain stays free of the web framework (the domain
core, pairs, rooms, matching and the session log, of any web library), and no import cycle appears
between the server's modules (none at run time; counting type-only imports, none beyond
the ones issue #23 is to break, listed below).

Both rules read the source with `ast` (nothing is imported), so they take milliseconds and
run in `make test-quick`. Each was seen failing: adding `from aiohttp import web` to
server/matching/scoring.py, and `import server.api.http` inside a function of server/errors.py (a cycle Python
imports without complaint until the call order changes).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"

# Where the web framework belongs: the application factory, the HTTP layer, the Socket.IO
# layer, and each package's route module (`api.py`). Everything else is domain or mechanism.
WEB_MODULES = {"server.__main__", "server.app"}
WEB_PACKAGES = ("server.api", "server.signaling")
ROUTE_MODULE = "api"

# A web framework is its server side: aiohttp's client (webhooks, OIDC discovery) is fine.
FRAMEWORK_MODULES = ("aiohttp.web", "socketio", "engineio")


def modules() -> dict[str, Path]:
    found = {}
    for path in SERVER.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "migrations" in parts:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name: str, path: Path, typing: bool = False) -> Iterator[tuple[str, int]]:
    """Each module `path` imports when it runs (function bodies included, `if TYPE_CHECKING`
    blocks left out unless `typing`), with its line; `from a import b` yields both `a` and
    `a.b`."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if (
                not typing
                and isinstance(child, ast.If)
                and "TYPE_CHECKING" in ast.unparse(child.test)
            ):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    module = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    module = child.module or ""
                yield module, child.lineno
                for alias in child.names:
                    yield f"{module}.{alias.name}", child.lineno
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(), filename=str(path)))


def is_web(name: str) -> bool:
    return (
        name in WEB_MODULES
        or name.startswith(tuple(package + "." for package in WEB_PACKAGES))
        or name.rsplit(".", 1)[-1] == ROUTE_MODULE
    )


def is_framework(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in FRAMEWORK_MODULES)


def test_domain_modules_do_not_import_the_web_framework() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for name, path in sorted(modules().items())
        if not is_web(name)
        for module, line in imported(name, path)
        if is_framework(module)
    ]
    assert not offenders, "the web framework belongs in api.py modules:\n" + "\n".join(offenders)


# The domain core (DESIGN.md) is plain Python: not even aiohttp's client.
DOMAIN_PACKAGES = ("server.pairs", "server.rooms", "server.matching", "server.sessionlog")
WEB_LIBRARIES = ("aiohttp", "socketio", "engineio", "aiortc")


def test_the_domain_core_imports_no_web_library_at_all() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for name, path in sorted(modules().items())
        if name.startswith(tuple(p + "." for p in DOMAIN_PACKAGES)) and not is_web(name)
        for module, line in imported(name, path, typing=True)
        if module.split(".")[0] in WEB_LIBRARIES
    ]
    assert not offenders, "the domain core is plain Python:\n" + "\n".join(offenders)


# Pairs are the vocabulary matching, rooms, the session log, meetings and the console share:
# the package sits below all of them and reaches for none (only errors and the store).
PAIRS_MAY_IMPORT = ("server.pairs", "server.errors", "server.store")


def test_pairs_import_none_of_the_packages_that_use_them() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for name, path in sorted(modules().items())
        if name == "server.pairs" or name.startswith("server.pairs.")
        for module, line in imported(name, path, typing=True)
        if module.startswith("server") and not module.startswith(PAIRS_MAY_IMPORT)
    ]
    assert not offenders, "server.pairs is shared vocabulary:\n" + "\n".join(offenders)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def import_graph(typing: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {
        name: {
            module
            for module, _ in imported(name, path, typing)
            if module in known and module != name
        }
        for name, path in known.items()
    }


def test_no_import_cycle_between_server_modules() -> None:
    graph = import_graph()
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


# Cycles that close only through imports made for type checking (`if TYPE_CHECKING:`), as
# they stand today: none. Issue #23 broke the last of them: the phone gateway's (gateway ↔
# uas, uas ↔ stream, services ↔ phone.api ↔ api.tokens), the service locator's (`services` ↔
# the API and signaling modules, gone with typed AppKeys) and the media health monitor's
# (health ↔ sfu: the ladder monitor sees the SFU through a Protocol). A cycle here fails; a
# cycle that cannot be avoided would be listed with why.
KNOWN_TYPING_CYCLES: list[set[str]] = []


def test_no_new_import_cycle_counting_type_only_imports() -> None:
    new = [
        component
        for component in cycles(import_graph(typing=True))
        if not any(set(component) <= known for known in KNOWN_TYPING_CYCLES)
    ]
    assert not new, f"new import cycles (type-only imports counted): {new}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_sfu_does_not_import_the_phone_gateway() -> None:
    # The gateway is a client of the SFU (phone/sfu_audio.py), never the other way round.
    graph = import_graph(typing=True)
    offenders = [
        f"{name} imports {module}"
        for name, imports in graph.items()
        if name.startswith("server.media.")
        for module in imports
        if module.startswith("server.phone.")
    ]
    assert not offenders, "\n".join(offenders)


def test_the_ladder_rules_are_a_pure_function() -> None:
    # media/ladder_rules.py decides from an observation and `now` alone: no event loop, no
    # aiortc, no SFU, no clock of its own (its tests are tests/unit/test_ladder_rules.py).
    name = "server.media.ladder_rules"
    offenders = [
        f"{module}:{line}"
        for module, line in imported(name, modules()[name], typing=True)
        if module.split(".")[0] in ("asyncio", "aiortc", "time")
        or module.startswith(("server.media.", "server.rooms.registry"))
    ]
    assert not offenders, "\n".join(offenders)
