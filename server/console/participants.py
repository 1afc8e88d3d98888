"""The console's participants: an import that reports each row's outcome in place, edits,
and deactivation (out of the matching pool, kept until reactivated).

The profiles themselves live in server/matching (`match_profiles`); this module adds what
a programme manager needs around them. An import may carry an `email` column, which the
matching profile does not hold: it is handed back in each row's outcome for sign-in.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select

from server.errors import Conflict, InvalidInput, NotFound
from server.matching.criteria import Criteria
from server.matching.profiles import Profile, parse_csv, parse_json_rows, parse_profile
from server.matching.runs import MatchingStore
from server.signin.accounts import AccountStore, normal_email
from server.store import Database
from server.store.schema import console_inactive_profiles, match_profiles

EMAIL = "email"
MAX_ROWS = 20_000  # one import; a cohort is hundreds, a large programme a few thousand
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}$")


@dataclass(frozen=True)
class RowOutcome:
    """One row of an import: what was given (the email apart), and its error if any."""

    row: int
    identity: str
    fields: dict[str, Any]
    email: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row, "identity": self.identity, "fields": self.fields,
            "email": self.email, "error": self.error, "ok": self.error is None,
        }  # fmt: skip


@dataclass
class ImportOutcome:
    imported: int = 0
    rows: list[RowOutcome] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if r.error is not None)


def rows_from_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    """CSV rows by spreadsheet row number (the header is row 1), an `email` column included:
    the profile parser knows every other column and refuses one it does not know."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        header = next(reader, None)
        names = [h.strip().lower() for h in header or []]
        if EMAIL not in names:
            return list(parse_csv(text))
        where = names.index(EMAIL)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([h for i, h in enumerate(header or []) if i != where])
        numbered: list[tuple[int, str]] = []  # (row number, email) of each row with values
        for values in reader:
            if any(v.strip() for v in values):
                numbered.append((reader.line_num, values[where] if where < len(values) else ""))
                writer.writerow([v for i, v in enumerate(values) if i != where])
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV near row {reader.line_num}: {exc}") from None
    rows = parse_csv(out.getvalue())  # the same rows, in the same order, without the email
    return [
        (number, {**row, EMAIL: email})
        for (number, email), (_, row) in zip(numbered, rows, strict=True)
    ]


def rows_from_json(data: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(number, dict(row)) for number, row in parse_json_rows(data)]


class Participants:
    """Import, edit, deactivate and reactivate the people matching works with."""

    def __init__(
        self, database: Database, matching: MatchingStore, accounts: AccountStore | None = None
    ):
        self._db = database
        self._matching = matching
        self._accounts = accounts

    async def import_rows(
        self, rows: Sequence[tuple[int, Mapping[str, Any]]], *, may_change_email: bool = True
    ) -> ImportOutcome:
        """Check every row; store the good ones (added or replaced by identity) and report
        each bad one with its error, so it can be fixed in place and sent again.

        `may_change_email` is false for a caller who may not decide where an existing
        person's sign-in link goes (a programme manager: the link signs in as them)."""
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"at most {MAX_ROWS} rows in one import; split the file")
        stored = {i.casefold(): i for i in await self._matching.identities()}
        inactive = {i.casefold() for i in await self.inactive_identities()}
        criteria = await self._matching.criteria()
        outcome = ImportOutcome()
        good: list[Profile] = []
        seen: dict[str, int] = {}
        for number, raw in rows:
            given = {k: v for k, v in raw.items() if k != EMAIL}
            email = _email(raw.get(EMAIL))
            identity = str(given.get("identity") or "").strip()
            try:
                profile = _check_row(given, email, criteria)
                key = profile.identity.casefold()
                if key in seen:
                    raise ValueError(
                        f"identity {profile.identity!r} already used on row {seen[key]}"
                    )
                if stored.get(key, profile.identity) != profile.identity:
                    raise ValueError(
                        f"identity {profile.identity!r} differs only in case from the stored "
                        f"{stored[key]!r} (identities ignore case)"
                    )
                if key in inactive:
                    raise ValueError(f"{profile.identity!r} is deactivated; reactivate them first")
                await self._check_email(profile.identity, email, may_change_email)
            except ValueError as exc:
                outcome.rows.append(RowOutcome(number, identity, given, email, str(exc)))
                continue
            seen[key] = number
            good.append(profile)
            outcome.rows.append(RowOutcome(number, profile.identity, given, email, None))
        await self._matching.save_profiles(good)
        outcome.imported = len(good)
        if self._accounts is not None:  # each email becomes the person's sign-in account
            names = {p.identity: p.name for p in good}
            for row in outcome.rows:
                if row.error is None and row.email is not None:
                    await self._accounts.upsert_participant(
                        row.identity, row.email, names[row.identity]
                    )
        return outcome

    async def _check_email(self, identity: str, email: str | None, may_change: bool) -> None:
        """An email another account signs in with cannot be this person's too; a caller who
        may not change a sign-in address gives a new person one, or the one they have."""
        if self._accounts is None or email is None:
            return
        try:
            normal = normal_email(email)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        owner = await self._accounts.by_email(normal)
        if owner is not None and owner.identity != identity:
            raise ValueError(f"email {email!r} already signs in another account")
        if not may_change:
            current = await self._accounts.by_identity(identity)
            if current is not None and current.email != normal:
                raise ValueError(
                    f"{identity!r} signs in as {current.email}; only an admin changes a "
                    "sign-in address (it decides where their sign-in link goes)"
                )

    async def update(self, identity: str, fields: Mapping[str, Any]) -> Profile:
        """Replace a stored profile by an edited one; the identity does not change."""
        if str(fields.get("identity", identity)).strip() != identity:
            raise InvalidInput("an edit cannot change the identity; import a new person instead")
        if identity not in await self._matching.identities():
            raise NotFound(f"no active participant {identity!r}")
        try:
            profile = _check_row({**fields, "identity": identity}, None, None)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        criteria = await self._matching.criteria()
        if criteria is not None:
            criteria.check_seniority([(profile.identity, profile.seniority)])
        await self._matching.save_profiles([profile])
        return profile

    async def deactivate(self, identity: str) -> None:
        """Out of the matching pool: later runs leave them out. Their pairs carry on."""
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(match_profiles.c.role, match_profiles.c.data).where(
                        match_profiles.c.identity == identity
                    )
                )
            ).first()
            if row is None:
                if await conn.scalar(_inactive(identity)) is not None:
                    raise Conflict(f"{identity!r} is already deactivated")
                raise NotFound(f"no participant {identity!r}")
            await conn.execute(delete(match_profiles).where(match_profiles.c.identity == identity))
            await conn.execute(insert(console_inactive_profiles).values(
                identity=identity, role=row.role, data=row.data, deactivated_at=time.time()
            ))  # fmt: skip

    async def reactivate(self, identity: str) -> None:
        async with self._db.begin() as conn:
            row = (
                await conn.execute(
                    select(console_inactive_profiles).where(
                        console_inactive_profiles.c.identity == identity
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no deactivated participant {identity!r}")
            await conn.execute(
                delete(console_inactive_profiles).where(
                    console_inactive_profiles.c.identity == identity
                )
            )
            await conn.execute(insert(match_profiles).values(
                identity=identity, role=row.role, data=row.data, updated_at=time.time()
            ))  # fmt: skip

    async def inactive_identities(self) -> list[str]:
        async with self._db.connect() as conn:
            return list(
                (await conn.execute(select(console_inactive_profiles.c.identity))).scalars()
            )

    async def everyone(self) -> list[dict[str, Any]]:
        """Every participant's profile JSON with `active`, by identity."""
        async with self._db.connect() as conn:
            active = (await conn.execute(select(match_profiles.c.data))).scalars().all()
            inactive = (
                await conn.execute(
                    select(
                        console_inactive_profiles.c.data, console_inactive_profiles.c.deactivated_at
                    )
                )
            ).all()
        people = [{**json.loads(d), "active": True} for d in active]
        people += [{**json.loads(d), "active": False, "deactivated_at": at} for d, at in inactive]
        return sorted(people, key=lambda p: str(p.get("identity", "")))


def _inactive(identity: str) -> Any:
    return select(console_inactive_profiles.c.identity).where(
        console_inactive_profiles.c.identity == identity
    )


def _email(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _check_row(given: Mapping[str, Any], email: str | None, criteria: Criteria | None) -> Profile:
    """A row's profile; ValueError names what is wrong (a field, the email, a seniority)."""
    if email is not None and not _EMAIL.match(email):
        raise ValueError(f"email {email!r} is not an email address")
    profile = parse_profile(given)
    if criteria is not None:
        try:
            criteria.check_seniority([(profile.identity, profile.seniority)])
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
    return profile
