"""Export a pair's log, or the whole program's, as JSON or CSV; both parse back to the same data.

An export is a set of flat tables (rows of plain values) taken straight from the stored log.
JSON keeps them as they are. CSV is one file: the first column names the table, the other
columns are the union of all tables' columns; an empty cell is null in a nullable column,
and a table with no rows is one row with nothing but its name (no real row is all empty:
every table has required columns). Text cells are neutralised against formula injection
(`server.spreadsheet`) and restored when parsed.
Values are typed by the table definitions in `server.store.schema`, so parsing restores them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Float, Integer, Table, select, true
from sqlalchemy.sql.elements import ColumnElement

from server.errors import InvalidInput
from server.sessionlog.privacy import Viewer, pair_fields, sees_feedback
from server.sessionlog.rows import fetch_all
from server.spreadsheet import neutralise, restore
from server.store import Database
from server.store.schema import (
    agenda_items,
    chat_messages,
    goals,
    pair_members,
    pairs,
    session_attendance,
    session_feedback,
    session_media_segments,
    session_notes,
    session_quality_samples,
    session_timeline,
    sessions,
)

FORMAT = "pairwise-sessionlog"
VERSION = 1

Tables = dict[str, list[dict[str, Any]]]

# Export name → stored table. Row ids of per-session tables are storage detail and left out.
SOURCES: dict[str, tuple[Table, tuple[str, ...]]] = {
    "pairs": (pairs, ()),
    "pair_members": (pair_members, ()),
    "sessions": (sessions, ()),
    "attendance": (session_attendance, ("id",)),
    "media_path": (session_media_segments, ("id",)),
    "quality_samples": (session_quality_samples, ("id",)),
    "timeline": (session_timeline, ("id",)),
    "notes": (session_notes, ()),
    "agenda": (agenda_items, ()),
    "goals": (goals, ()),
    "feedback": (session_feedback, ()),
    "transcript": (chat_messages, ("client_id",)),
}


def columns(name: str) -> list[Any]:
    table, left_out = SOURCES[name]
    return [c for c in table.columns if c.name not in left_out]


async def collect(
    database: Database, pair_ids: Sequence[str] | None, with_transcript: bool, viewer: Viewer
) -> Tables:
    """The stored log of these pairs (all pairs when None), in stored order in every table,
    as `viewer` may see it (a member: no partner's feedback, no flag)."""
    chosen = pairs.c.id.in_(pair_ids) if pair_ids is not None else true()
    pair_ids_q = select(pairs.c.id).where(chosen)
    session_ids_q = select(sessions.c.id).where(sessions.c.pair_id.in_(pair_ids_q))
    tables: Tables = {}
    for name, (table, _) in SOURCES.items():
        if name == "transcript" and not with_transcript:
            continue
        condition: ColumnElement[bool]
        if name == "pairs":
            condition = chosen
        elif name == "transcript":
            condition = chat_messages.c.room.in_(select(pairs.c.room).where(chosen))
        elif "pair_id" in table.c:
            condition = table.c.pair_id.in_(pair_ids_q)
        else:
            condition = table.c.session_id.in_(session_ids_q)
        query = select(*columns(name)).where(condition).order_by(*table.primary_key.columns)
        tables[name] = [dict(r) for r in await fetch_all(database, query)]
    tables["pairs"] = [pair_fields(viewer, row) for row in tables["pairs"]]
    tables["feedback"] = [
        row for row in tables["feedback"] if sees_feedback(viewer, row["identity"])
    ]
    return tables


def to_json(tables: Tables) -> str:
    return json.dumps(
        {"format": FORMAT, "version": VERSION, "exported_at": time.time(), "tables": tables},
        ensure_ascii=False,
        indent=1,
    )


def from_json(text: str) -> Tables:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not a JSON export: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput("not a Pairwise session-log export")
    tables: Tables = document["tables"]
    return tables


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # repr round-trips a float exactly
    if isinstance(value, str):
        return neutralise(value)  # text people typed: never a formula in a spreadsheet
    return str(value)


def _value(text: str, column: Any) -> Any:
    if text == "" and column.nullable:
        return None
    kind = column.type
    if isinstance(kind, Boolean):
        return text == "true"
    if isinstance(kind, Float):
        return float(text)
    if isinstance(kind, Integer):  # BigInteger is an Integer
        return int(text)
    return restore(text)


def _present(name: str, rows: list[dict[str, Any]]) -> list[str]:
    """The table's columns this export holds (a member's lacks some: see `collect`)."""
    held = {key for row in rows for key in row}
    return [c.name for c in columns(name) if not rows or c.name in held]


def to_csv(tables: Tables) -> str:
    header = ["table"]
    for name, rows in tables.items():
        header += [c for c in _present(name, rows) if c not in header]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for name, rows in tables.items():
        if not rows:
            writer.writerow({"table": name})
        for row in rows:
            writer.writerow({"table": name, **{k: _cell(v) for k, v in row.items()}})
    return out.getvalue()


def from_csv(text: str) -> Tables:
    tables: Tables = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("table") or ""
        if name not in SOURCES:
            raise InvalidInput(f"unknown table {name!r} in CSV export")
        rows = tables.setdefault(name, [])
        if not any(v for k, v in row.items() if k != "table"):
            continue  # the table is there, with no rows
        rows.append({c.name: _value(row[c.name] or "", c) for c in columns(name) if c.name in row})
    return tables
