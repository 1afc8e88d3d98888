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
from server.api.keys import BUS, CHAT, DATABASE, REMOVALS, ROOMS, SETTINGS, SIGNIN, TOKENS
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
from server.media.service import LocalMedia, MediaService
from server.media.sfu import Sfu
from server.media.signaling import MediaHandlers
from server.media.workers.pool import WorkerPool
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
from server.phone.worker_audio import WorkerRoomAudio
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
from server.sessionlog import api as sessionlog_api
from server.sessionlog.service import SessionLogService
from server.signaling.broadcast import Broadcaster
from server.signaling.catchup import CatchUpRedisManager, ChatCatchUp
from server.signaling.gestures import GestureHandlers
from server.signaling.handlers import RoomHandlers
from server.signaling.metrics import SignalingMetrics
from server.signaling.roster import RedisRoster
from server.signaling.server import SIGNALING, Signaling
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
# Parts no route reads: only their lifecycles here (and the tests) reach them.
JOBS = web.AppKey("jobs", JobRunner)
MAILIN: web.AppKey[InboundSmtp | None] = web.AppKey("mailin")  # None: no PAIRWISE_INBOUND_SMTP_PORT
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
    sfu: Sfu | None = None
    media: MediaService
    if settings.media_workers:
        media = pool = WorkerPool(settings, rooms, bus, registry, settings.media_workers)
    else:
        sfu = Sfu(settings, rooms, bus, MediaMetrics(registry))
        media = LocalMedia(sfu)
    cluster = Cluster(settings, redis, rooms, media.forwarded_streams)
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
            SfuRoomAudio(sfu) if sfu is not None else WorkerRoomAudio(pool),
            registry,
            require_open_room=room_gate,
            announce_mute=phone_api.mute_announcer(signaling, media),
        )
    MediaHandlers(signaling, media, dialin=dial_in.for_room if dial_in else None)
    signaling.attach(app)
    signin = SignIn(
        database,
        Mailer(settings),
        tokens,
        base_url=settings.base_url,
        link_minutes=settings.signin_link_minutes,
        session_days=settings.session_days,
        idle_days=settings.session_idle_days,
        oidc=signin_api.oidc_client(settings),
    )
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
    meetings = Meetings(
        MeetingStore(database),
        sessionlog.pairs,
        Profiles(database),
        jobs,
        Mailer(settings),
        directory or AccountEmails(AccountStore(database)),
        CalendarFeeds(database),
        base_url=settings.base_url,
        presence=_presence(rooms, roster),
        dial_in=_phone_of(dial_in) if dial_in else None,
        reminders=Reminders(
            tuple(settings.meetings_reminder_minutes), settings.meetings_absent_minutes
        ),
        push=push,
    )
    on_pair_ended(database, meetings.pair_ended)
    addresses = ReplyAddresses(settings.secret_key, settings.inbound_domain)
    digest = ChatDigest(
        database,
        meetings.pairs,
        jobs,
        meetings.mailer,
        meetings.directory,
        secret_key=settings.secret_key,
        base_url=settings.base_url,
        after_minutes=settings.digest_after_minutes,
        every_minutes=settings.digest_every_minutes,
        reply_address=addresses.address if settings.inbound_domain else None,
        push=push,
    )
    webhooks = Webhooks(
        database,
        sessionlog.pairs,
        jobs,
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
    mailin = None
    if settings.inbound_smtp_port is not None:
        mailin = InboundSmtp(
            MailReplies(addresses, meetings.pairs, removals, chat),
            settings.inbound_smtp_host,
            settings.inbound_smtp_port,
            max_bytes=settings.inbound_max_bytes,
            hostname=settings.inbound_domain or "localhost",
        )
    # Each route module reads only the parts under its own keys (server/api/keys.py for
    # those the access checks and several packages read).
    app[SETTINGS] = settings
    app[DATABASE] = database
    app[TOKENS] = tokens
    app[REMOVALS] = removals
    app[SIGNIN] = signin
    app[ROOMS] = rooms
    app[BUS] = bus
    app[CHAT] = chat
    app[SIGNALING] = signaling
    app[ops.REGISTRY] = registry
    app[ops.REDIS] = redis
    app[ops.MEDIA_HEALTH] = media.health
    app[cluster_api.CLUSTER] = cluster
    app[console_api.ROSTER] = roster
    app[media_api.MEDIA] = media
    if sfu is not None:
        app[media_api.SFU] = sfu
    app[sessionlog_api.SESSIONLOG] = sessionlog
    app[phone_api.DIAL_IN] = dial_in
    app[phone_api.PHONE] = phone
    app[meetings_api.MEETINGS] = meetings
    app[meetings_api.DIGEST] = digest
    app[webhooks_api.WEBHOOKS] = webhooks
    app[JOBS] = jobs
    app[MAILIN] = mailin
    app[signin_api.LINK_BUCKETS] = signin_api.link_buckets(settings.signin_links_per_hour)
    for table in ROUTE_TABLES:
        table.install(app)
    openapi = build_openapi(_all_routes(), VERSION)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/api/openapi.json", openapi_json)
    pages.install(app)
    push_api.install(app, push)
    # Started in this order, stopped in the reverse one (aiohttp's cleanup contexts).
    app.cleanup_ctx.extend(
        [
            _database,
            _recorders,
            _cluster,
            _roster,
            _rooms,
            _sfu,
            _signaling,
            _phone,
            _signin,
            _webhooks,
            _jobs,
        ]
    )
    if mailin is not None:
        app.cleanup_ctx.append(mailin.context)
    if settings.retention_days is not None:
        app.cleanup_ctx.append(
            retention_job(database, settings.retention_days, settings.retention_interval_seconds)
        )
    return app


def _presence(
    rooms: RoomRegistry, roster: RedisRoster | None
) -> Callable[[str], Awaitable[set[str]]]:
    """Who is in a room now: on this node, and on every node when there is a roster."""

    async def presence(room: str) -> set[str]:
        here = rooms.get(room)
        present = set(here.participants) if here is not None else set()
        if roster is not None:
            present |= {p["identity"] for p in await roster.participants(room)}
        return present

    return presence


def _phone_of(dial_in: DialIn) -> Callable[[str, Member], Awaitable[dict[str, str]]]:
    async def phone(room: str, member: Member) -> dict[str, str]:
        pin = await dial_in.pins.participant_pin(room, member.identity, member.name, member.role)
        return {"number": dial_in.number, "pin": pin}

    return phone


def _all_routes() -> RouteTable:
    merged = RouteTable()
    for table in ROUTE_TABLES:
        merged.endpoints.extend(table.endpoints)
    return merged


# --- lifecycles: each part's start and stop, as aiohttp cleanup contexts -------------------


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Migrated before anything uses it; closed last (Redis with it)."""
    database = app[DATABASE]
    await migrate(database)
    await MatchingStore(database, app[SETTINGS].node_name).fail_abandoned()
    log.info("database ready", extra={"url": _redacted(database.url)})
    yield
    redis = app[ops.REDIS]
    if redis is not None:
        await redis.aclose()
    await database.close()
    log.info("stopped")


async def _recorders(app: web.Application) -> AsyncIterator[None]:
    """The session log, and the phone's PIN rejections when there is a phone, record room
    events; the broadcaster sends them to the browsers."""
    bus, recorder = app[BUS], app[sessionlog_api.SESSIONLOG].recorder
    bus.subscribe(recorder, "sessionlog", kinds=recorder.KINDS)
    if app[phone_api.PHONE] is not None:
        pin_log = PinRejectionLog(app[DATABASE], recorder)
        bus.subscribe(pin_log, "phone-pin-log", kinds=pin_log.KINDS)
    bus.subscribe(Broadcaster(app[SIGNALING], app[CHAT].privacy), "broadcast", paced=True)
    yield


async def _cluster(app: web.Application) -> AsyncIterator[None]:
    cluster = app[cluster_api.CLUSTER]
    app[BUS].subscribe(cluster, "cluster", kinds=cluster.KINDS)
    await cluster.start()
    yield
    await cluster.stop()


async def _roster(app: web.Application) -> AsyncIterator[None]:
    roster = app[console_api.ROSTER]
    if roster is not None:
        app[BUS].subscribe(roster, "roster", kinds=roster.KINDS)
        await roster.start()
    yield
    if roster is not None:
        await roster.stop()


async def _rooms(app: web.Application) -> AsyncIterator[None]:
    """Rooms close, and the bus delivers what their closing said, before the roster stops."""
    yield
    app[ROOMS].close_all()
    await app[BUS].close()


async def _sfu(app: web.Application) -> AsyncIterator[None]:
    media = app[media_api.MEDIA]
    await media.start()
    yield
    await media.stop()


async def _signaling(app: web.Application) -> AsyncIterator[None]:
    """Browsers are disconnected before the SFU stops."""
    yield
    await app[SIGNALING].sio.shutdown()


async def _phone(app: web.Application) -> AsyncIterator[None]:
    phone = app[phone_api.PHONE]
    if phone is not None:
        await phone.start()
    yield
    if phone is not None:
        await phone.stop()


async def _signin(app: web.Application) -> AsyncIterator[None]:
    """Sign-in's mail still being sent goes out before anything stops."""
    yield
    await app[SIGNIN].drain()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """Room events reach the webhooks once the database is migrated; their HTTP client
    closes after the jobs that use it have stopped (`_jobs` comes after this)."""
    webhooks = app[webhooks_api.WEBHOOKS]
    app[BUS].subscribe(webhooks, "webhooks", kinds=webhooks.KINDS)
    await webhooks.start()
    yield
    await webhooks.sender.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """Due jobs run once the database is migrated and stop before it closes."""
    jobs = app[JOBS]
    await app[meetings_api.DIGEST].start()
    jobs.start()
    yield
    await jobs.stop()
    await app[push_api.PUSH].close()


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
