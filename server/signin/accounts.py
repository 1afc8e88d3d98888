"""Accounts: the people who sign in, known by their email address.

A participant's `identity` is the id their pair memberships and join tokens use
(`server.pairs.model.Member.identity`); other packages (meetings, the console) find a
participant's email through `AccountStore.by_identity`. Operators have a role instead:
admin (everything), manager (the cohort and its pairs) or viewer (health and exports).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from server.errors import Conflict, InvalidInput, NotFound
from server.store import Database
from server.store.schema import accounts


class AccountRole(StrEnum):
    PARTICIPANT = "participant"
    ADMIN = "admin"
    MANAGER = "manager"
    VIEWER = "viewer"


OPERATOR_ROLES = frozenset({AccountRole.ADMIN, AccountRole.MANAGER, AccountRole.VIEWER})
# A deliberately plain check: one @, no spaces, a dot in the domain. The link mailed to it
# is the real test of an address.
EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def normal_email(raw: str) -> str:
    """The address as stored and compared: trimmed and lower-cased, or InvalidInput."""
    email = raw.strip().lower()
    if len(email) > 320 or not EMAIL.match(email):
        raise InvalidInput(f"{raw[:100]!r} is not an email address", code="invalid_email")
    return email


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    name: str
    identity: str | None  # participants only: their identity in pairs and join tokens
    role: AccountRole
    active: bool
    # When it was last deactivated; kept when it is reactivated, so that a participant's
    # home lets them back into rooms the deactivation removed them from (see
    # `SignIn.room_token`), while tokens issued before it stay refused.
    deactivated_at: float | None = None

    @property
    def operator(self) -> bool:
        return self.role in OPERATOR_ROLES

    @property
    def label(self) -> str:
        """Who did it, as the audit log names them."""
        return self.email


class AccountStore:
    def __init__(self, database: Database):
        self._db = database

    async def create_operator(self, email: str, role: str, name: str = "") -> Account:
        role_ = _operator_role(role)
        email = normal_email(email)
        return await self._insert(email=email, name=name or email, identity=None, role=role_)

    async def upsert_participant(self, identity: str, email: str, name: str) -> Account:
        """The participant `identity`, created or brought up to date (email and name): the
        console's import calls this for each row. An email that belongs to someone else is a
        Conflict."""
        email = normal_email(email)
        existing = await self.by_identity(identity)
        if existing is None:
            return await self._insert(
                email=email, name=name, identity=identity, role=AccountRole.PARTICIPANT
            )
        return await self.update(existing.id, email=email, name=name)

    async def get(self, account_id: int) -> Account:
        found = await self._one(accounts.c.id == account_id)
        if found is None:
            raise NotFound(f"no account {account_id}")
        return found

    async def by_email(self, email: str) -> Account | None:
        try:
            email = normal_email(email)
        except InvalidInput:
            return None
        return await self._one(accounts.c.email == email)

    async def by_identity(self, identity: str) -> Account | None:
        """The participant whose pair identity is `identity` (active or not)."""
        return await self._one(accounts.c.identity == identity)

    async def list(self, *, operators: bool | None = None) -> list[Account]:
        query = select(accounts).order_by(accounts.c.id)
        if operators is True:
            query = query.where(accounts.c.role != AccountRole.PARTICIPANT.value)
        elif operators is False:
            query = query.where(accounts.c.role == AccountRole.PARTICIPANT.value)
        async with self._db.connect() as conn:
            return [_account(r) for r in (await conn.execute(query)).mappings()]

    async def update(
        self,
        account_id: int,
        *,
        email: str | None = None,
        name: str | None = None,
        role: str | None = None,
    ) -> Account:
        """Change an account's email, name or (operators') role."""
        current = await self.get(account_id)
        values: dict[str, object] = {}
        if email is not None:
            values["email"] = normal_email(email)
        if name is not None:
            values["name"] = name
        if role is not None:
            if not current.operator:
                raise InvalidInput("a participant has no operator role", code="not_an_operator")
            values["role"] = _operator_role(role).value
        if values:
            try:
                async with self._db.begin() as conn:
                    await conn.execute(
                        update(accounts).where(accounts.c.id == account_id).values(**values)
                    )
            except IntegrityError:
                raise Conflict("another account has that email", code="email_taken") from None
        return await self.get(account_id)

    async def set_active(self, account_id: int, active: bool, now: float | None = None) -> Account:
        """Deactivate (noting when) or reactivate an account; reactivating keeps the time
        of the last deactivation."""
        await self.get(account_id)
        values: dict[str, object] = {"active": active}
        if not active:
            values["deactivated_at"] = time.time() if now is None else now
        async with self._db.begin() as conn:
            await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
        return await self.get(account_id)

    async def _insert(
        self, *, email: str, name: str, identity: str | None, role: AccountRole
    ) -> Account:
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a name is 1 to 200 characters")
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    insert(accounts).values(
                        email=email,
                        name=name.strip(),
                        identity=identity,
                        role=role.value,
                        active=True,
                        created_at=time.time(),
                        deactivated_at=None,
                    )
                )
        except IntegrityError:
            raise Conflict(f"an account with {email} exists", code="email_taken") from None
        found = await self.by_email(email)
        assert found is not None
        return found

    async def _one(self, where: object) -> Account | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(accounts).where(where))).mappings().first()  # type: ignore[arg-type]
        return _account(row) if row is not None else None


def _operator_role(role: str) -> AccountRole:
    try:
        parsed = AccountRole(role)
    except ValueError:
        parsed = AccountRole.PARTICIPANT
    if parsed not in OPERATOR_ROLES:
        raise InvalidInput(
            f"an operator's role is admin, manager or viewer, not {role[:40]!r}",
            code="invalid_role",
        )
    return parsed


def _account(row: object) -> Account:
    r = dict(row)  # type: ignore[call-overload]
    return Account(
        id=r["id"],
        email=r["email"],
        name=r["name"],
        identity=r["identity"],
        role=AccountRole(r["role"]),
        active=bool(r["active"]),
        deactivated_at=r["deactivated_at"],
    )
