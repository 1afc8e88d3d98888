"""Where `app.create_app` keeps the parts that the HTTP layer's own access checks and more
than one package's routes read. A part only one package's routes read has its key in that
package's `api.py` (`server.media.api.SFU`, `server.meetings.api.MEETINGS`, ...).

Nothing here imports a route module or the Socket.IO layer, so `server.api.access` can read
these without an import cycle."""

from __future__ import annotations

from aiohttp import web

from server.auth import TokenIssuer
from server.config import Settings
from server.rooms.chat import ChatService
from server.rooms.events import EventBus
from server.rooms.registry import RoomRegistry
from server.rooms.removals import RemovalStore
from server.signin.service import SignIn
from server.store import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenIssuer)
REMOVALS = web.AppKey("removals", RemovalStore)
SIGNIN = web.AppKey("signin", SignIn)
ROOMS = web.AppKey("rooms", RoomRegistry)
BUS = web.AppKey("bus", EventBus)
CHAT = web.AppKey("chat", ChatService)
