"""Erasing or anonymising a person, for the operator, with an audit entry.

Both replace the person's identity everywhere with a pseudonym (identities may be email
addresses) and their display name with REMOVED_NAME, and delete their matching profile,
their feedback, their phone PINs and read markers. Erasure also replaces what they wrote
(chat messages, notes, agenda items, goals) with REMOVED_TEXT; anonymisation keeps it,
unlinked from them. Rows stay, so a pair's log still adds up (their partner's messages
still have a thread, attendance still counts a second person).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import NotFound
from server.pairs.queries import pairs_of
from server.privacy import audit
from server.privacy.audit import PrivacyLog
from server.privacy.inventory import MENTIONS, PERSON_COLUMNS
from server.privacy.scrub import secure_delete, truncate_wal
from server.store import Database
from server.store.schema import match_profiles, pairs, privacy_audit

REMOVED_NAME = "Removed participant"
REMOVED_TEXT = "removed"
Mode = Literal["erase", "anonymise"]


@dataclass(frozen=True)
class Outcome:
    pseudonym: str
    mode: Mode
    changed: dict[str, int]  # rows per table.column


async def forget(database: Database, identity: str, mode: Mode, actor: str) -> Outcome:
    """Erase or anonymise `identity`; NotFound if nothing is held about them."""
    pseudonym = f"erased-{secrets.token_hex(8)}"
    now = time.time()
    changed: dict[str, int] = {}
    async with database.begin() as conn:
        await secure_delete(conn, database)
        names = await _names(conn, identity)
        for entry in PERSON_COLUMNS:
            where = entry.identity == identity
            if entry.delete:
                result = await conn.execute(delete(entry.table).where(where))
            else:
                values: dict[str, Any] = {entry.column: pseudonym}
                values.update({name: REMOVED_NAME for name in entry.names})
                if mode == "erase":
                    values.update({column: REMOVED_TEXT for column in entry.content})
                result = await conn.execute(update(entry.table).where(where).values(values))
            if result.rowcount:
                changed[entry.key] = result.rowcount
        if not changed:
            raise NotFound(f"nothing is held about {identity!r}")
        await _rewrite_mentions(conn, pseudonym, [identity, *names])
        # The person's own request and audit entries named them: they name the pseudonym now.
        await conn.execute(
            update(privacy_audit)
            .where(privacy_audit.c.subject == identity)
            .values(subject=pseudonym)
        )
        await conn.execute(
            update(privacy_audit).where(privacy_audit.c.actor == identity).values(actor=pseudonym)
        )
        await PrivacyLog.close_requests(conn, pseudonym, now)
        await audit.record(conn, actor, mode, pseudonym, {"rows": changed}, now=now)
    await truncate_wal(database)
    return Outcome(pseudonym, mode, changed)


async def _names(conn: AsyncConnection, identity: str) -> list[str]:
    """Every display name the person had, longest first (so "Ada Lovelace" goes before "Ada")."""
    found: set[str] = set()
    for entry in PERSON_COLUMNS:
        for column in entry.names:
            query = select(entry.table.c[column]).where(entry.identity == identity).distinct()
            found.update(row[0] for row in (await conn.execute(query)).all())
    profile = (
        await conn.execute(
            select(match_profiles.c.data).where(match_profiles.c.identity == identity)
        )
    ).scalar_one_or_none()
    if profile:
        name = json.loads(profile).get("name")
        if name:
            found.add(str(name))
    return sorted((n for n in found if n and n != REMOVED_NAME), key=len, reverse=True)


async def _rewrite_mentions(conn: AsyncConnection, pseudonym: str, mentions: list[str]) -> None:
    """Titles and flags of the person's pairs, and match explanations, lose their name."""
    query = select(pairs.c.id, pairs.c.title, pairs.c.flag_reason).where(
        pairs.c.id.in_(pairs_of(pseudonym))
    )
    for pair_id, title, flag_reason in (await conn.execute(query)).all():
        # The title is "Ada & Bob" by default; a flag says who said "not a good fit".
        values = {"title": _without(title, mentions, REMOVED_NAME)}
        if flag_reason:
            values["flag_reason"] = _without(flag_reason, mentions, REMOVED_NAME)
        await conn.execute(update(pairs).where(pairs.c.id == pair_id).values(values))
    for table, column, texts in MENTIONS:
        found = (
            (await conn.execute(select(table).where(table.c[column] == pseudonym))).mappings().all()
        )
        for row in found:
            values = {
                text: _without(row[text], mentions, pseudonym)
                for text in texts
                if row[text] is not None
            }
            await conn.execute(update(table).where(table.c.id == row["id"]).values(values))


def _without(text: str, mentions: list[str], replacement: str) -> str:
    for mention in mentions:
        text = text.replace(mention, replacement)
    return text
