"""The parts of a running server, wired once by `app.create_app` and shared by the adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from server.appkeys import SERVICES as SERVICES
from server.auth import TokenIssuer
from server.cluster.service import Cluster
from server.config import Settings
from server.jobs.runner import JobRunner
from server.media.sfu import Sfu
from server.rooms.chat import ChatService
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.rooms.removals import RemovalStore
from server.sessionlog.service import SessionLogService
from server.signaling.roster import RedisRoster
from server.signaling.server import Signaling
from server.signin.service import SignIn
from server.store import Database

if TYPE_CHECKING:  # the phone API module itself reads Services
    from server.mailin.endpoint import InboundSmtp
    from server.meetings.digest import ChatDigest
    from server.meetings.service import Meetings
    from server.phone.dial_in import DialIn
    from server.phone.gateway import PhoneGateway
    from server.webhooks.service import Webhooks


@dataclass
class Services:
    settings: Settings
    database: Database
    tokens: TokenIssuer
    registry: CollectorRegistry
    bus: EventBus
    rooms: RoomRegistry
    chat: ChatService
    signaling: Signaling
    cluster: Cluster
    removals: RemovalStore
    redis: Redis | None = None
    roster: RedisRoster | None = None
    sessionlog: SessionLogService | None = None
    sfu: Sfu | None = None
    dial_in: DialIn | None = None
    phone: PhoneGateway | None = None
    signin: SignIn | None = None
    jobs: JobRunner | None = None
    meetings: Meetings | None = None
    digest: ChatDigest | None = None
    webhooks: Webhooks | None = None
    mailin: InboundSmtp | None = None

    @property
    def admin_key(self) -> str:
        assert self.settings.admin_key is not None, "with_secrets() fills it before start"
        return self.settings.admin_key


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]
