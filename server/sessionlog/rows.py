"""The few database moves every session-log module makes, written once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, and_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from server.errors import InvalidInput, NotFound
from server.store import Database


async def fetch_all(db: Database, query: Select[Any]) -> Sequence[RowMapping]:
    async with db.connect() as conn:
        return (await conn.execute(query)).mappings().all()


async def fetch_one(db: Database, query: Select[Any]) -> RowMapping | None:
    async with db.connect() as conn:
        return (await conn.execute(query)).mappings().first()


async def insert_id(conn: AsyncConnection, statement: Insert) -> int:
    """Run an insert on a table with an integer `id` and return the new id."""
    result = await conn.execute(statement.returning(statement.table.c.id))
    return int(result.scalar_one())


async def fetch_of_pair(
    db: Database, table: Table, row_id: int, pair_id: str, what: str
) -> RowMapping:
    """The row `row_id` of `table` if it belongs to the pair; NotFound otherwise."""
    row = await fetch_one(
        db, select(table).where(and_(table.c.id == row_id, table.c.pair_id == pair_id))
    )
    if row is None:
        raise NotFound(f"pair {pair_id!r} has no {what} {row_id}")
    return row


def clean_text(text: str, what: str, max_chars: int) -> str:
    """Text a member typed, stripped; empty or too long is InvalidInput naming `what`."""
    text = text.strip()
    if not text:
        raise InvalidInput(f"{what} needs some text")
    if len(text) > max_chars:
        raise InvalidInput(f"{what} has at most {max_chars} characters", code="too_long")
    return text
