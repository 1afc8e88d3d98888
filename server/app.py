"""Build the aiohttp Application: wiring only, no logic."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.api import ops, pages, tokens
from server.api import rooms as rooms_api
from server.api.cors import OriginPolicy
from server.api.forwarded import TrustedProxies
from server.api.http import RouteTable, error_middleware
from server.api.openapi import build_openapi
from server.api.throttle import throttle_middleware
from server.auth import TokenIssuer
from server.cluster import api as cluster_api
from server.cluster.service import Cluster
from server.config import Settings
from server.console import api as console_api
from server.jobs.runner import JobRunner, RetryPolicy
from server.jobs.store import JobStore
from server.mail import Mailer
from server.mailin.addresses import ReplyAddresses
from server.mailin.endpoint import InboundSmtp
from server.mailin.replies import MailReplies
from server.matching import api as matching_api
from server.matching.runs import MatchingStore
from server.media import api as media_api
from server.media.metrics import MediaMetrics
from server.media.sfu import Sfu
from server.media.signaling import MediaHandlers
from server.meetings import api as meetings_api
from server.meetings.digest import ChatDigest
from server.meetings.directory import AccountEmails, Directory
from server.meetings.feeds import CalendarFeeds
from server.meetings.people import Profiles
from server.meetings.service import Meetings, Reminders
from server.meetings.store import MeetingStore
from server.metrics import new_registry
from server.pairs.model import Member
from server.pairs.store import PairStore, on_pair_ended
from server.phone import api as phone_api
from server.phone.dial_in import DialIn
from server.phone.gateway import PhoneGateway
from server.phone.pins import PinStore
from server.phone.session_log import PinRejectionLog
from server.phone.settings import PhoneSettings
from server.phone.sfu_audio import SfuRoomAudio
from server.privacy import api as privacy_api
from server.privacy.retention import retention_job
from server.push import api as push_api
from server.push.keys import load_or_create
from server.push.service import Push
from server.push.store import PushStore
from server.rooms.chat import ChatService, ChatStore
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.rooms.removals import RemovalStore
from server.services import SERVICES, Services
from server.sessionlog import api as sessionlog_api
from server.sessionlog.service import SessionLogService
from server.signaling.broadcast import Broadcaster
from server.signaling.catchup import CatchUpRedisManager, ChatCatchUp
from server.signaling.gestures import GestureHandlers
from server.signaling.handlers import RoomHandlers
from server.signaling.metrics import SignalingMetrics
from server.signaling.roster import RedisRoster
from server.signaling.server import Signaling
from server.signin import api as signin_api
from server.signin.accounts import AccountStore
from server.signin.service import SignIn
from server.store import Database
from server.store.migrate import migrate
from server.webhooks import api as webhooks_api
from server.webhooks.delivery import Sender
from server.webhooks.service import Webhooks

log = logging.getLogger("pairwise.app")

VERSION = "0.1.0"
ROUTE_TABLES: list[RouteTable] = [
    ops.routes,
    tokens.routes,
    cluster_api.routes,
    rooms_api.routes,
    sessionlog_api.routes,
    media_api.routes,
    phone_api.routes,
    matching_api.routes,
    privacy_api.routes,
    signin_api.routes,
    console_api.routes,
    meetings_api.routes,
    webhooks_api.routes,
    push_api.routes,
]


def create_app(settings: Settings, *, directory: Directory | None = None) -> web.Application:
    """An application for `settings`, whose secrets must already be filled in; `directory`
    says where each person's mail goes (meetings)."""
    if settings.admin_key is None or settings.secret_key is None:
        raise ValueError("create_app needs settings from config.with_secrets()")
    app = web.Application(
        # Outermost first; errors become JSON innermost, so the others see them as responses.
        middlewares=[
            TrustedProxies(settings.trusted_proxies).middleware(),
            pages.security_headers,
            throttle_middleware(settings.tokens_per_minute, settings.auth_failures_per_minute),
            OriginPolicy(settings.public_url, settings.cors_origins).middleware(),
            error_middleware,
        ],
        client_max_size=settings.max_request_bytes,
    )
    database = Database(settings.effective_database_url)
    tokens = TokenIssuer(settings.secret_key, settings.token_ttl_seconds)
    registry = new_registry()
    bus = EventBus()
    rooms = RoomRegistry(bus, settings.room_capacity, settings.room_grace_seconds)
    chat = ChatService(ChatStore(database), bus, settings.chat_max_chars)
    # After Redis restarts, the pool's old connections fail once each ("Connection closed
    # by server"). Without a retry on a fresh connection that one error made a room lookup
    # fall back to serving the room here, while its node still held it: a split room, seen
    # in the Redis-restart test. Two quick retries; a real outage still fails in < 0.3 s.
    redis = (
        Redis.from_url(
            settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        if settings.redis_url
        else None
    )
    manager = (
        CatchUpRedisManager(settings.redis_url, channel=f"{settings.cluster}:socketio")
        if settings.redis_url
        else None
    )
    roster = (
        RedisRoster(
            redis, settings.cluster, settings.node_name, rooms, bus, settings.heartbeat_seconds
        )
        if redis
        else None
    )
    removals = RemovalStore(database, settings.secret_key)
    signaling = Signaling(
        settings,
        tokens,
        rooms,
        SignalingMetrics(registry),
        manager,
        is_removed=removals.refuses,
        roster=roster,
    )
    if manager is not None:
        ChatCatchUp(manager, chat.store, rooms, signaling.sio)
    sfu = Sfu(settings, rooms, bus, MediaMetrics(registry))
    cluster = Cluster(settings, redis, rooms, sfu.forwarded_streams)
    sessionlog = SessionLogService.create(database)
    RoomHandlers(
        signaling,
        chat,
        cluster.node_for,
        sessionlog.pairs.require_open_room,
        sessionlog.pairs.title_of_room,
    )
    GestureHandlers(signaling)
    dial_in, phone = None, None
    if settings.sip_bind:
        pins = PinStore(database, settings.sip_pin_digits)
        room_gate = PairStore(database).require_open_room
        dial_in = DialIn(pins, settings.sip_dialin_number or "", room_gate)
        phone = PhoneGateway(
            PhoneSettings.from_settings(settings),
            rooms,
            bus,
            pins,
            SfuRoomAudio(sfu),
            registry,
            require_open_room=room_gate,
            announce_mute=phone_api.mute_announcer(signaling, sfu),
        )
    MediaHandlers(signaling, sfu, dialin=dial_in.for_room if dial_in else None)
    signaling.attach(app)
    services = Services(
        settings=settings,
        database=database,
        tokens=tokens,
        registry=registry,
        bus=bus,
        rooms=rooms,
        chat=chat,
        signaling=signaling,
        redis=redis,
        roster=roster,
        cluster=cluster,
        removals=removals,
        sessionlog=sessionlog,
        sfu=sfu,
        dial_in=dial_in,
        phone=phone,
        signin=SignIn(
            database,
            Mailer(settings),
            tokens,
            base_url=settings.base_url,
            link_minutes=settings.signin_link_minutes,
            session_days=settings.session_days,
            idle_days=settings.session_idle_days,
            oidc=signin_api.oidc_client(settings),
        ),
    )
    services.jobs, services.meetings, push = _meetings(settings, services, directory)
    addresses = ReplyAddresses(settings.secret_key, settings.inbound_domain)
    services.digest = ChatDigest(
        database,
        services.meetings.pairs,
        services.jobs,
        services.meetings.mailer,
        services.meetings.directory,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        after_minutes=settings.digest_after_minutes,
        every_minutes=settings.digest_every_minutes,
        reply_address=addresses.address if settings.inbound_domain else None,
        push=push,
    )
    services.webhooks = Webhooks(
        database,
        sessionlog.pairs,
        services.jobs,
        Sender(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
        ),
        server_key=settings.secret_key,
        base_url=settings.base_url,
        retry=RetryPolicy(
            max_attempts=settings.webhook_max_attempts, first_delay=settings.webhook_retry_seconds
        ),
        quiet_days=settings.webhook_quiet_days,
    )
    if settings.inbound_smtp_port is not None:
        services.mailin = InboundSmtp(
            MailReplies(addresses, services.meetings.pairs, removals, chat),
            settings.inbound_smtp_host,
            settings.inbound_smtp_port,
            max_bytes=settings.inbound_max_bytes,
            hostname=settings.inbound_domain or "localhost",
        )
    app[SERVICES] = services
    app[signin_api.LINK_BUCKETS] = signin_api.link_buckets(settings.signin_links_per_hour)
    for table in ROUTE_TABLES:
        table.install(app)
    openapi = build_openapi(_all_routes(), VERSION)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/api/openapi.json", openapi_json)
    pages.install(app)
    push_api.install(app, push)
    app.cleanup_ctx.append(_lifecycle)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_jobs)
    if services.mailin is not None:
        app.cleanup_ctx.append(services.mailin.context)
    if settings.retention_days is not None:
        app.cleanup_ctx.append(
            retention_job(database, settings.retention_days, settings.retention_interval_seconds)
        )
    return app


def _meetings(
    settings: Settings, services: Services, directory: Directory | None
) -> tuple[JobRunner, Meetings, Push]:
    database = services.database
    jobs = JobRunner(
        JobStore(database),
        f"{settings.node_name}/{uuid.uuid4().hex[:8]}",
        poll_seconds=settings.jobs_poll_seconds,
        lease_seconds=settings.jobs_lease_seconds,
        retry=RetryPolicy(max_attempts=settings.jobs_max_attempts),
    )
    push = Push(
        PushStore(database),
        jobs,
        load_or_create(settings.data_dir),
        subject=settings.vapid_subject,
        allow_insecure=settings.push_allow_insecure,
    )

    async def presence(room: str) -> set[str]:
        here = services.rooms.get(room)
        present = set(here.participants) if here is not None else set()
        if services.roster is not None:
            present |= {p["identity"] for p in await services.roster.participants(room)}
        return present

    assert services.sessionlog is not None
    meetings = Meetings(
        MeetingStore(database),
        services.sessionlog.pairs,
        Profiles(database),
        jobs,
        Mailer(settings),
        directory or AccountEmails(AccountStore(database)),
        CalendarFeeds(database),
        base_url=settings.base_url,
        presence=presence,
        dial_in=_phone_of(services.dial_in) if services.dial_in else None,
        reminders=Reminders(
            tuple(settings.meetings_reminder_minutes), settings.meetings_absent_minutes
        ),
        push=push,
    )
    on_pair_ended(database, meetings.pair_ended)
    return jobs, meetings, push


def _phone_of(dial_in: DialIn) -> Callable[[str, Member], Awaitable[dict[str, str]]]:
    async def phone(room: str, member: Member) -> dict[str, str]:
        pin = await dial_in.pins.participant_pin(room, member.identity, member.name, member.role)
        return {"number": dial_in.number, "pin": pin}

    return phone


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """Due jobs run once the database is migrated (`_lifecycle` runs first) and stop
    before it closes."""
    jobs, digest = app[SERVICES].jobs, app[SERVICES].digest
    assert jobs is not None and digest is not None
    await digest.start()
    jobs.start()
    yield
    await jobs.stop()
    await app[push_api.PUSH].close()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """Room events reach the webhooks once the database is migrated; their HTTP client
    closes after the jobs that use it have stopped (`_jobs` comes after this)."""
    services = app[SERVICES]
    webhooks = services.webhooks
    assert webhooks is not None
    services.bus.subscribe(webhooks, "webhooks", kinds=webhooks.KINDS)
    await webhooks.start()
    yield
    await webhooks.sender.close()


def _all_routes() -> RouteTable:
    merged = RouteTable()
    for table in ROUTE_TABLES:
        merged.endpoints.extend(table.endpoints)
    return merged


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await migrate(services.database)
    await MatchingStore(services.database, services.settings.node_name).fail_abandoned()
    log.info("database ready", extra={"url": _redacted(services.database.url)})
    if services.sessionlog is not None:
        recorder = services.sessionlog.recorder
        services.bus.subscribe(recorder, "sessionlog", kinds=recorder.KINDS)
        if services.phone is not None:
            pin_log = PinRejectionLog(services.database, recorder)
            services.bus.subscribe(pin_log, "phone-pin-log", kinds=pin_log.KINDS)
    services.bus.subscribe(
        Broadcaster(services.signaling, services.chat.privacy), "broadcast", paced=True
    )
    services.bus.subscribe(services.cluster, "cluster", kinds=services.cluster.KINDS)
    await services.cluster.start()
    if services.roster is not None:
        services.bus.subscribe(services.roster, "roster", kinds=services.roster.KINDS)
        await services.roster.start()
    if services.sfu is not None:
        await services.sfu.start()
    if services.phone is not None:
        await services.phone.start()
    yield
    if services.signin is not None:
        await services.signin.drain()
    if services.phone is not None:
        await services.phone.stop()
    await services.signaling.sio.shutdown()
    if services.sfu is not None:
        await services.sfu.stop()
    services.rooms.close_all()
    await services.bus.close()
    if services.roster is not None:
        await services.roster.stop()
    await services.cluster.stop()
    if services.redis is not None:
        await services.redis.aclose()
    await services.database.close()
    log.info("stopped")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
