"""What meetings know of a pair's members: their time zones (from their matching
profiles) and the two profiles slots are suggested from."""

from __future__ import annotations

import json

from sqlalchemy import select

from server.matching.profiles import Profile, profile_from_json
from server.store import Database
from server.store.schema import match_profiles


class Profiles:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def of(self, identities: list[str]) -> dict[str, Profile]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(match_profiles.c.identity, match_profiles.c.data).where(
                    match_profiles.c.identity.in_(identities)
                )
            )
            return {identity: profile_from_json(json.loads(data)) for identity, data in rows}

    async def zones(self, identities: list[str], default: str) -> dict[str, str]:
        """Each person's zone: their profile's, or `default` for someone without one."""
        found = await self.of(identities)
        return {i: found[i].timezone if i in found else default for i in identities}
