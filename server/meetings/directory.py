"""Who to write to: the one thing meetings need to know about a person's account.

`app` wires `AccountEmails` (the accounts of people who sign in); tests use a small
in-memory one. None means no mail for them: unknown, removed or deactivated.
"""

from __future__ import annotations

from typing import Protocol

from server.signin.accounts import AccountStore


class Directory(Protocol):
    async def email_of(self, identity: str) -> str | None: ...


class AccountEmails:
    """The accounts of people who sign in (server/signin): an identity's mail goes to its
    account's address while the account is active; a deactivated or unknown person gets none
    (and their calendar feed is dead)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    async def email_of(self, identity: str) -> str | None:
        account = await self._accounts.by_identity(identity)
        return account.email if account is not None and account.active else None
