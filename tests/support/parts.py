"""A running server's parts, for tests that reach past its HTTP API (a store, the jobs'
clock, the SFU's peers): each read from the typed `web.AppKey` that `server.app.create_app`
set it under, so a test reads the very object the routes use."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from server.api import ops
from server.api.keys import BUS, CHAT, DATABASE, REMOVALS, ROOMS, SETTINGS, SIGNIN, TOKENS
from server.app import JOBS, MAILIN
from server.auth import TokenIssuer
from server.config import Settings
from server.jobs.runner import JobRunner
from server.mailin.endpoint import InboundSmtp
from server.media.api import MEDIA, SFU
from server.media.service import MediaService
from server.media.sfu import Sfu
from server.meetings.api import DIGEST, MEETINGS
from server.meetings.digest import ChatDigest
from server.meetings.service import Meetings
from server.phone.api import DIAL_IN, PHONE
from server.phone.dial_in import DialIn
from server.phone.gateway import PhoneGateway
from server.rooms.chat import ChatService
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.rooms.removals import RemovalStore
from server.sessionlog.api import SESSIONLOG
from server.sessionlog.service import SessionLogService
from server.signaling.server import SIGNALING, Signaling
from server.signin.service import SignIn
from server.store import Database
from server.webhooks.api import WEBHOOKS
from server.webhooks.service import Webhooks


class ServerParts:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    @property
    def settings(self) -> Settings:
        return self.app[SETTINGS]

    @property
    def database(self) -> Database:
        return self.app[DATABASE]

    @property
    def tokens(self) -> TokenIssuer:
        return self.app[TOKENS]

    @property
    def removals(self) -> RemovalStore:
        return self.app[REMOVALS]

    @property
    def signin(self) -> SignIn:
        return self.app[SIGNIN]

    @property
    def rooms(self) -> RoomRegistry:
        return self.app[ROOMS]

    @property
    def bus(self) -> EventBus:
        return self.app[BUS]

    @property
    def chat(self) -> ChatService:
        return self.app[CHAT]

    @property
    def signaling(self) -> Signaling:
        return self.app[SIGNALING]

    @property
    def registry(self) -> CollectorRegistry:
        return self.app[ops.REGISTRY]

    @property
    def sfu(self) -> Sfu:
        return self.app[SFU]

    @property
    def media(self) -> MediaService:
        return self.app[MEDIA]

    @property
    def sessionlog(self) -> SessionLogService:
        return self.app[SESSIONLOG]

    @property
    def dial_in(self) -> DialIn | None:
        return self.app[DIAL_IN]

    @property
    def phone(self) -> PhoneGateway | None:
        return self.app[PHONE]

    @property
    def meetings(self) -> Meetings:
        return self.app[MEETINGS]

    @property
    def digest(self) -> ChatDigest:
        return self.app[DIGEST]

    @property
    def webhooks(self) -> Webhooks:
        return self.app[WEBHOOKS]

    @property
    def jobs(self) -> JobRunner:
        return self.app[JOBS]

    @property
    def mailin(self) -> InboundSmtp | None:
        return self.app[MAILIN]
