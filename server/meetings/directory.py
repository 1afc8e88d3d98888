"""Who to write to: the one thing meetings need to know about a person's account.

`app` wires a Directory to the accounts store (people who sign in); tests use a small
in-memory one. None means no mail for them: unknown, removed or deactivated.
"""

from __future__ import annotations

from typing import Protocol


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
