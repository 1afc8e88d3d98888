"""Everything held about one person, as JSON: the participant's own download."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from server.privacy.inventory import PERSON_COLUMNS
from server.store import Database
from server.store.schema import match_profiles, pair_members, pairs


async def personal_data(database: Database, identity: str) -> dict[str, Any]:
    """`{"identity", "profile", "pairs", "<table>.<column>": [rows], ...}`.

    Every row whose identity column is this person, from every table in the inventory;
    other people's rows are not included (a partner's feedback stays theirs).
    """
    out: dict[str, Any] = {"identity": identity}
    async with database.connect() as conn:
        profile = (
            await conn.execute(
                select(match_profiles.c.data).where(match_profiles.c.identity == identity)
            )
        ).scalar_one_or_none()
        out["profile"] = json.loads(profile) if profile else None
        joined = pairs.join(pair_members, pair_members.c.pair_id == pairs.c.id)
        member_of = select(
            pairs.c.id, pairs.c.title, pairs.c.status, pair_members.c.role, pair_members.c.name
        ).select_from(joined)
        rows = (await conn.execute(member_of.where(pair_members.c.identity == identity))).all()
        out["pairs"] = [dict(row._mapping) for row in rows]
        for entry in PERSON_COLUMNS:
            if entry.table is match_profiles:
                continue
            query = select(entry.table).where(entry.identity == identity)
            found = (await conn.execute(query)).mappings().all()
            out[entry.key] = [_plain(dict(row)) for row in found]
    return out


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "pin"}  # a PIN is a credential


async def rooms_of(database: Database, identity: str) -> list[str]:
    """The rooms of the pairs `identity` is a member of."""
    joined = pairs.join(pair_members, pair_members.c.pair_id == pairs.c.id)
    query = select(pairs.c.room).select_from(joined).where(pair_members.c.identity == identity)
    async with database.connect() as conn:
        return [row[0] for row in (await conn.execute(query)).all()]
