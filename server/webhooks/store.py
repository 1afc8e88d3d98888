"""Webhooks and their deliveries in the database."""

from __future__ import annotations

import json
import secrets
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import NotFound
from server.store import Database
from server.store.schema import webhook_deliveries, webhooks
from server.webhooks.events import Event, EventType
from server.webhooks.formats import Format

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: tuple[EventType, ...]
    format: Format
    secret_salt: str
    created_at: float

    @classmethod
    def from_row(cls, row: RowMapping) -> Webhook:
        return cls(
            id=row["id"],
            url=row["url"],
            events=tuple(EventType(e) for e in json.loads(row["events"])),
            format=Format(row["format"]),
            secret_salt=row["secret_salt"],
            created_at=row["created_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": [str(e) for e in self.events],
            "format": str(self.format),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Attempt:
    number: int  # 1 for the first
    status_code: int | None
    error: str | None
    at: float


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    event: Event
    status: str  # pending | delivered | failed
    attempts: int
    status_code: int | None
    last_error: str | None
    last_attempt_at: float | None
    next_attempt_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Delivery:
        event = Event(
            EventType(row["event"]),
            row["event_key"],
            row["pair_id"],
            row["occurred_at"],
            json.loads(row["facts"]),
        )
        return cls(
            id=row["id"],
            webhook_id=row["webhook_id"],
            event=event,
            status=row["status"],
            attempts=row["attempts"],
            status_code=row["status_code"],
            last_error=row["last_error"],
            last_attempt_at=row["last_attempt_at"],
            next_attempt_at=row["next_attempt_at"],
            finished_at=row["finished_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": str(self.event.type),
            "event_id": self.event.id,
            "pair_id": self.event.pair_id,
            "occurred_at": self.event.occurred_at,
            "status": self.status,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
            "next_attempt_at": self.next_attempt_at,
            "finished_at": self.finished_at,
        }


class WebhookStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction, for a change and its audit entry together."""
        return self._db.begin()

    async def create(
        self,
        conn: AsyncConnection,
        url: str,
        events: tuple[EventType, ...],
        fmt: Format,
        now: float,
    ) -> Webhook:
        hook = Webhook(uuid.uuid4().hex, url, events, fmt, secrets.token_hex(32), now)
        await conn.execute(
            insert(webhooks).values(
                id=hook.id,
                url=hook.url,
                events=json.dumps([str(e) for e in events]),
                format=str(fmt),
                secret_salt=hook.secret_salt,
                created_at=now,
            )
        )
        return hook

    async def count(self) -> int:
        async with self._db.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(webhooks)) or 0)

    async def all(self) -> list[Webhook]:
        async with self._db.connect() as conn:
            rows = await conn.execute(select(webhooks).order_by(webhooks.c.created_at))
            return [Webhook.from_row(r) for r in rows.mappings()]

    async def find(self, webhook_id: str) -> Webhook | None:
        async with self._db.connect() as conn:
            row = (
                (await conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)))
                .mappings()
                .first()
            )
        return None if row is None else Webhook.from_row(row)

    async def get(self, webhook_id: str) -> Webhook:
        hook = await self.find(webhook_id)
        if hook is None:
            raise NotFound(f"no webhook {webhook_id!r}", code="no_webhook")
        return hook

    async def delete(self, conn: AsyncConnection, webhook_id: str) -> bool:
        """The webhook and its deliveries (explicitly: SQLite cascades only with its
        foreign keys pragma on)."""
        await conn.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        result = await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
        return int(result.rowcount) == 1

    async def subscribed(self, event: EventType) -> list[Webhook]:
        """The webhooks that take `event` (a handful: filtered here, not in SQL)."""
        return [hook for hook in await self.all() if event in hook.events]

    async def add_delivery(self, webhook_id: str, event: Event) -> int | None:
        """A pending delivery of `event`; None if this webhook has one of its key already."""
        try:
            async with self._db.begin() as conn:
                result = await conn.execute(
                    insert(webhook_deliveries).values(
                        webhook_id=webhook_id,
                        event=str(event.type),
                        event_key=event.key,
                        pair_id=event.pair_id,
                        facts=json.dumps(event.facts),
                        occurred_at=event.occurred_at,
                        status=PENDING,
                        attempts=0,
                    )
                )
        except IntegrityError:
            return None
        key = result.inserted_primary_key
        return None if key is None else int(key[0])

    async def delivery(self, delivery_id: int) -> Delivery | None:
        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else Delivery.from_row(row)

    async def deliveries(self, webhook_id: str, limit: int) -> list[Delivery]:
        """The newest first."""
        query = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        async with self._db.connect() as conn:
            return [Delivery.from_row(r) for r in (await conn.execute(query)).mappings()]

    async def pending(self, before: float) -> list[Delivery]:
        """Deliveries still pending that occurred before `before`."""
        query = select(webhook_deliveries).where(
            webhook_deliveries.c.status == PENDING, webhook_deliveries.c.occurred_at < before
        )
        async with self._db.connect() as conn:
            return [Delivery.from_row(r) for r in (await conn.execute(query)).mappings()]

    async def record(
        self,
        delivery: Delivery,
        status: str,
        attempt: Attempt,
        next_at: float | None = None,
    ) -> None:
        """The outcome of one attempt; `status` is the delivery's after it."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery.id)
                .values(
                    status=status,
                    attempts=attempt.number,
                    status_code=attempt.status_code,
                    last_error=None if attempt.error is None else attempt.error[:2000],
                    last_attempt_at=attempt.at,
                    next_attempt_at=next_at,
                    finished_at=None if status == PENDING else attempt.at,
                )
            )

    async def prune(self, before: float) -> int:
        """Forget deliveries that finished before `before`; how many."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(webhook_deliveries).where(
                    webhook_deliveries.c.status != PENDING,
                    webhook_deliveries.c.finished_at < before,
                )
            )
        return int(result.rowcount)
