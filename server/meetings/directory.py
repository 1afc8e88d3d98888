"""Who to write to: the one thing meetings need to know about a person's account.

`app` wires a Directory to the accounts store (people who sign in); tests use a small
in-memory one. None means no mail for them: unknown, removed or deactivated.
"""

from __future__ import annotations

from typing import Protocol

from server.signin.accounts import AccountStore


class Directory(Protocol):
    async def email_of(self, identity: str) -> str | None: ...


class NoDirectory:
    """No accounts known (mail goes nowhere, feeds are dead) until one is wired."""

    async def email_of(self, identity: str) -> str | None:
        return None


class IdentityEmails:
    """Until accounts are wired: an identity that is an email address is where mail goes
    (programmes often use the address as the identity); any other gets none."""

    async def email_of(self, identity: str) -> str | None:
        local, at, domain = identity.partition("@")
        return identity if at and local and "." in domain else None


class AccountEmails:
    """The accounts of people who sign in (server/signin): an identity's mail goes to its
    account's address while the account is active; a deactivated or unknown person gets none
    (and their calendar feed is dead)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    async def email_of(self, identity: str) -> str | None:
        account = await self._accounts.by_identity(identity)
        return account.email if account is not None and account.active else None
