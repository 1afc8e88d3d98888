"""Push subscriptions and notification channels in the database.

A subscription's endpoint is unique: the same browser subscribing again (or for another
person, after a sign-out) replaces the row, so one browser never gets a notice twice or
someone else's notices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from server.store import Database
from server.store.schema import notification_channels, push_subscriptions

TOPICS = ("reminders", "messages")


@dataclass(frozen=True)
class Subscription:
    id: int
    identity: str
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class Channels:
    """How a person wants to hear about one topic. Push reaches them only where they
    subscribed a browser; email is on until they turn it off."""

    email: bool = True
    push: bool = True


class PushStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def subscribe(
        self, identity: str, endpoint: str, p256dh: str, auth: str, *, limit: int
    ) -> Subscription:
        """Save (or take over) the browser at `endpoint` for `identity`; past `limit`
        browsers, the oldest other one is dropped."""
        async with self._db.begin() as conn:
            await conn.execute(
                delete(push_subscriptions).where(push_subscriptions.c.endpoint == endpoint)
            )
            result = await conn.execute(
                insert(push_subscriptions).values(
                    identity=identity,
                    endpoint=endpoint,
                    p256dh=p256dh,
                    auth=auth,
                    created_at=time.time(),
                )
            )
            (new_id,) = result.inserted_primary_key or (None,)
            ids = (
                (
                    await conn.execute(
                        select(push_subscriptions.c.id)
                        .where(push_subscriptions.c.identity == identity)
                        .order_by(push_subscriptions.c.id.desc())
                    )
                )
                .scalars()
                .all()
            )
            if len(ids) > limit:
                await conn.execute(
                    delete(push_subscriptions).where(push_subscriptions.c.id.in_(ids[limit:]))
                )
        assert new_id is not None
        return Subscription(int(new_id), identity, endpoint, p256dh, auth)

    async def unsubscribe(self, identity: str, endpoint: str) -> bool:
        """Drop `identity`'s browser at `endpoint` (never another person's)."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                delete(push_subscriptions).where(
                    push_subscriptions.c.identity == identity,
                    push_subscriptions.c.endpoint == endpoint,
                )
            )
        return int(result.rowcount) > 0

    async def remove(self, subscription_id: int) -> None:
        """The push service said the subscription is gone (404/410)."""
        async with self._db.begin() as conn:
            await conn.execute(
                delete(push_subscriptions).where(push_subscriptions.c.id == subscription_id)
            )

    async def of(self, identity: str) -> list[Subscription]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(push_subscriptions)
                .where(push_subscriptions.c.identity == identity)
                .order_by(push_subscriptions.c.id)
            )
            return [_subscription(r) for r in rows.mappings()]

    async def get(self, subscription_id: int) -> Subscription | None:
        async with self._db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(push_subscriptions).where(push_subscriptions.c.id == subscription_id)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _subscription(row)

    async def count(self, identity: str) -> int:
        async with self._db.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count())
                        .select_from(push_subscriptions)
                        .where(push_subscriptions.c.identity == identity)
                    )
                ).scalar_one()
            )

    async def channels(self, identity: str) -> dict[str, Channels]:
        """Each topic's channels for `identity` (defaults where they chose nothing)."""
        chosen = {topic: Channels() for topic in TOPICS}
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(notification_channels).where(notification_channels.c.identity == identity)
            )
            for row in rows.mappings():
                if row["topic"] in chosen:
                    chosen[row["topic"]] = Channels(bool(row["email"]), bool(row["push"]))
        return chosen

    async def choose(self, identity: str, topic: str, channels: Channels) -> None:
        if topic not in TOPICS:
            raise ValueError(f"no topic {topic!r}")
        where = (notification_channels.c.identity == identity) & (
            notification_channels.c.topic == topic
        )
        values = {"email": channels.email, "push": channels.push}
        async with self._db.begin() as conn:
            done = await conn.execute(update(notification_channels).where(where).values(**values))
            if done.rowcount == 0:
                await conn.execute(
                    insert(notification_channels).values(identity=identity, topic=topic, **values)
                )


def _subscription(row: object) -> Subscription:
    r = dict(row)  # type: ignore[call-overload]
    return Subscription(r["id"], r["identity"], r["endpoint"], r["p256dh"], r["auth"])
