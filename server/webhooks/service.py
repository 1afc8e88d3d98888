"""Webhooks: what happened is queued as one delivery per webhook that takes it, and each
delivery is a durable job (server/jobs), so a retry survives a restart and runs on one node.

Events come from three places: the HTTP handlers that change things (`emit`: a pair
published, a meeting booked, a pair flagged), the room event bus (`__call__`: a pair's
meeting started or ended, a member's media stepped down the ladder), and an hourly job
(pairs gone quiet; it also re-queues a delivery whose job was never written, because its
node died between the two writes, and forgets deliveries older than 30 days).

A delivery that fails on the network, by timing out, or with a 5xx (or 408, 429) is tried
again after `PAIRWISE_WEBHOOK_RETRY_SECONDS`, doubling up to an hour, at most
`PAIRWISE_WEBHOOK_MAX_ATTEMPTS` times; any other answer is final. Each attempt's outcome
is kept on the delivery (its status code, its error, when the next try is due).
"""

from __future__ import annotations

import logging
import math
from urllib.parse import urlsplit

from server.errors import Conflict, NotFound
from server.jobs.runner import JobRunner, RetryPolicy
from server.jobs.store import Job
from server.pairs.model import Pair
from server.pairs.store import PairStore
from server.privacy import audit
from server.rooms.events import MediaModeChanged, RoomEvent, SessionEnded, SessionStarted
from server.sessionlog.program_health import program_health
from server.sessionlog.sessions import is_fallback
from server.store import Database
from server.webhooks import events as ev
from server.webhooks.delivery import Sender
from server.webhooks.events import Event, EventType
from server.webhooks.formats import Format, render
from server.webhooks.signing import HEADER, signature_header, webhook_secret
from server.webhooks.store import (
    DELIVERED,
    FAILED,
    PENDING,
    Attempt,
    Webhook,
    WebhookStore,
)

log = logging.getLogger("pairwise.webhooks")

DELIVER = "webhook.deliver"
HOURLY = "webhooks.hourly"
HOUR = 3600.0
KEEP_SECONDS = 30 * 86400.0
MAX_WEBHOOKS = 50


class DeliveryFailed(Exception):
    """One attempt failed and another is due (the job runner schedules it)."""


class Webhooks:
    KINDS = (SessionStarted, SessionEnded, MediaModeChanged)

    def __init__(
        self,
        database: Database,
        pairs: PairStore,
        jobs: JobRunner,
        sender: Sender,
        *,
        server_key: str,
        base_url: str,
        retry: RetryPolicy,
        quiet_days: int,
    ) -> None:
        self._db = database
        self.store = WebhookStore(database)
        self.pairs = pairs
        self.jobs = jobs
        self.sender = sender
        self._server_key = server_key
        self.base_url = base_url
        self.quiet_days = quiet_days
        jobs.handle(DELIVER, self._deliver, retry=retry)
        jobs.handle(HOURLY, self._hourly)

    def _now(self) -> float:
        return self.jobs.clock()

    def secret_of(self, hook: Webhook) -> str:
        return webhook_secret(self._server_key, hook.secret_salt)

    # -- registering --------------------------------------------------------------------

    async def create(
        self, url: str, events: tuple[EventType, ...], fmt: Format, actor: str
    ) -> tuple[Webhook, str]:
        """A new webhook and its secret (shown to the operator this once)."""
        await self.sender.check(url)
        if await self.store.count() >= MAX_WEBHOOKS:
            raise Conflict(f"there are {MAX_WEBHOOKS} webhooks already", code="too_many_webhooks")
        now = self._now()
        async with self.store.begin() as conn:
            hook = await self.store.create(conn, url, events, fmt, now)
            detail = {"webhook": hook.id, "host": urlsplit(url).hostname, "events": list(events)}
            await audit.record(conn, actor, "webhook_create", None, detail, now)
        return hook, self.secret_of(hook)

    async def delete(self, webhook_id: str, actor: str) -> None:
        """The webhook, its deliveries, and their retries still due."""
        async with self.store.begin() as conn:
            if not await self.store.delete(conn, webhook_id):
                raise NotFound(f"no webhook {webhook_id!r}", code="no_webhook")
            await audit.record(conn, actor, "webhook_delete", None, {"webhook": webhook_id})
        await self.jobs.store.cancel(f"webhook:{webhook_id}:")

    # -- events -------------------------------------------------------------------------

    async def emit(self, *events: Event) -> None:
        """Queue each event for the webhooks that take it. Never raises: what the caller
        did has happened either way (a failure is logged)."""
        for event in events:
            try:
                for hook in await self.store.subscribed(event.type):
                    delivery_id = await self.store.add_delivery(hook.id, event)
                    if delivery_id is not None:
                        await self._schedule(hook.id, delivery_id, self._now())
            except Exception:
                log.exception("a webhook event was not queued", extra={"event": event.key})

    async def __call__(self, event: RoomEvent) -> None:
        """A room event: the pair's meeting started or ended, or a member's media stepped
        down (a step the member chose is not a fallback)."""
        if isinstance(event, SessionStarted):
            kind = EventType.MEETING_STARTED
        elif isinstance(event, SessionEnded):
            kind = EventType.MEETING_ENDED
        elif isinstance(event, MediaModeChanged):
            if event.choice or not is_fallback(event.previous, event.mode, event.reason):
                return
            kind = EventType.FALLBACK_USED
        else:
            return
        if not await self.store.subscribed(kind):
            return
        pair = await self.pairs.by_room(event.room)
        if pair is None:  # an ad-hoc room an operator made: no pair's meeting
            return
        if isinstance(event, SessionStarted):
            await self.emit(ev.meeting_started(pair, event))
        elif isinstance(event, SessionEnded):
            await self.emit(ev.meeting_ended(pair, event))
        elif isinstance(event, MediaModeChanged):
            await self.emit(ev.fallback_used(pair, event))

    # -- jobs ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Every node asks for the next hourly check; its key makes it one job."""
        await self._schedule_hourly(self._now())

    async def _schedule(self, webhook_id: str, delivery_id: int, at: float) -> None:
        await self.jobs.schedule(
            DELIVER, {"delivery": delivery_id}, at, key=f"webhook:{webhook_id}:{delivery_id}"
        )

    async def _schedule_hourly(self, after: float) -> None:
        at = (math.floor(after / HOUR) + 1) * HOUR
        await self.jobs.schedule(HOURLY, {}, at, key=f"{HOURLY}:{int(at)}")

    async def _deliver(self, job: Job) -> None:
        delivery = await self.store.delivery(int(job.payload["delivery"]))
        if delivery is None or delivery.status != PENDING:  # deleted, or sent already
            return
        hook = await self.store.find(delivery.webhook_id)
        if hook is None:
            return
        event = delivery.event
        body = render(hook.format, event, await self._pair(event.pair_id), self.base_url)
        headers = {
            "Content-Type": "application/json",
            HEADER: signature_header(self.secret_of(hook), int(self._now()), body),
            "Pairwise-Event": str(event.type),
            "Pairwise-Event-Id": event.id,
            "Pairwise-Delivery": str(delivery.id),
        }
        outcome = await self.sender.send(hook.url, body, headers)
        now = self._now()
        attempt = Attempt(job.attempts, outcome.status_code, outcome.error, now)
        if outcome.delivered:
            await self.store.record(delivery, DELIVERED, attempt)
            return
        delay = self.jobs.policy(DELIVER).delay(job.attempts) if outcome.retry else None
        if delay is None:
            await self.store.record(delivery, FAILED, attempt)
            log.warning(
                "webhook delivery failed for good",
                extra={"webhook": hook.id, "delivery": delivery.id, "error": outcome.error},
            )
            return
        await self.store.record(delivery, PENDING, attempt, next_at=now + delay)
        raise DeliveryFailed(outcome.error)

    async def _pair(self, pair_id: str) -> Pair | None:
        try:
            return await self.pairs.get(pair_id)
        except NotFound:
            return None

    async def _hourly(self, job: Job) -> None:
        now = self._now()
        try:
            if await self.store.subscribed(EventType.PAIR_QUIET):
                health = await program_health(self._db, quiet_days=self.quiet_days, now=now)
                await self.emit(*(ev.pair_quiet(quiet, now) for quiet in health.going_quiet))
            for delivery in await self.store.pending(before=now - 60):
                await self._schedule(delivery.webhook_id, delivery.id, now)
            await self.store.prune(now - KEEP_SECONDS)
        finally:
            await self._schedule_hourly(now)
