"""The key under which `app.create_app` keeps the running server's parts in the aiohttp
Application. A leaf module, so the HTTP layer can reach the parts without importing them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from server.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services")
