"""A server with sign-in wired to a real SMTP server (aiosmtpd on loopback), and a browser-
like HTTP client that keeps cookies."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from server.app import create_app
from server.config import Settings
from server.signin.service import SignIn
from tests.conftest import ADMIN
from tests.support.parts import ServerParts
from tests.support.services import free_port

LINK = re.compile(r"(http://\S+/signin#link=([A-Za-z0-9_\-]+))")


class Mailbox:
    """What the SMTP server received. `hold` keeps the server from answering DATA (a slow
    SMTP server), so a test can see that nothing waits for it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.hold = threading.Event()
        self.hold.set()  # set: deliver at once
        self.in_data = threading.Event()
        self._arrived = threading.Condition()
        self.port = free_port()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
        with self._arrived:
            self.messages.append(message_from_bytes(envelope.content))
            self._arrived.notify_all()
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        def wait() -> bool:
            with self._arrived:
                return self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)

        assert await asyncio.to_thread(wait), f"{count} messages did not arrive"
        return self.messages

    def link_in(self, message: Message) -> tuple[str, str]:
        """The sign-in URL in a message and its secret."""
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        found = LINK.search(body.decode())
        assert found, body
        return found.group(1), found.group(2)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        box.hold.set()
        controller.stop()


@dataclass
class SignInServer:
    url: str
    services: ServerParts
    app: web.Application
    mailbox: Mailbox

    @property
    def signin(self) -> SignIn:
        assert self.services.signin is not None
        return self.services.signin

    def browser(self) -> Browser:
        return Browser(self.url, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, headers=ADMIN, json=body) as resp,
        ):
            payload = await resp.json()
            assert resp.status in (200, 201), payload
            return payload

    async def participant(self, identity: str, email: str, name: str) -> dict[str, Any]:
        return dict(
            await self.admin(
                "POST",
                "/api/v1/accounts/participants",
                {"identity": identity, "email": email, "name": name},
            )
        )

    async def ada_paired_with_grace(self) -> dict[str, Any]:
        """Ada (ada@example.org, a participant) paired with Grace Hopper in room-ada."""
        await self.participant("ada", "ada@example.org", "Ada Lovelace")
        return dict(
            await self.admin(
                "POST",
                "/api/v1/pairs",
                {
                    "members": [
                        {"identity": "grace", "name": "Grace Hopper", "role": "mentor"},
                        {"identity": "ada", "name": "Ada Lovelace", "role": "mentee"},
                    ],
                    "room": "room-ada",
                },
            )
        )

    async def signed_in(self, email: str) -> Browser:
        """A browser signed in as `email`, through a link an operator made."""
        account = await self.signin.accounts.by_email(email)
        assert account is not None
        browser = self.browser()
        secret = (await self.signin.link_url(account)).rsplit("link=", 1)[1]
        await browser.confirm(secret)
        return browser


@dataclass
class Browser:
    """Requests as a same-origin page makes them: cookies kept, `Origin` sent on changes."""

    url: str
    http: aiohttp.ClientSession
    csrf: str | None = None
    set_cookies: tuple[str, ...] = ()
    confirmed_cookies: tuple[str, ...] = ()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        with_csrf: bool = True,
    ) -> tuple[int, Any]:
        sent = {"Origin": self.url} if method not in ("GET", "HEAD") else {}
        if with_csrf and self.csrf and method not in ("GET", "HEAD"):
            sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        async with self.http.request(method, self.url + path, json=body, headers=sent) as resp:
            payload = await resp.json() if resp.content_type == "application/json" else None
            self.set_cookies = tuple(resp.headers.getall("Set-Cookie", ()))
            return resp.status, payload

    async def confirm(self, secret: str, replace: bool = False) -> dict[str, Any]:
        status, who = await self.call("POST", "/api/v1/signin/preview", {"link": secret})
        assert status == 200, who
        status, done = await self.call(
            "POST",
            "/api/v1/signin/confirm",
            {"link": secret, "replace": replace},
            headers={"X-CSRF-Token": who["csrf"]},
        )
        assert status == 200, done
        self.confirmed_cookies = self.set_cookies
        await self.refresh()
        return dict(done)

    async def refresh(self) -> None:
        status, session = await self.call("GET", "/api/v1/signin/session")
        assert status == 200, session
        self.csrf = session["csrf"]

    def cookie(self, name: str) -> str:
        """The value of a cookie the browser holds for the server."""
        import yarl

        return self.http.cookie_jar.filter_cookies(yarl.URL(self.url))[name].value

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def make_server(
    aiohttp_server: Any, make_settings: Callable[..., Settings], mailbox: Mailbox
) -> Callable[..., Any]:
    async def make(database_url: str | None = None, **overrides: Any) -> SignInServer:
        port = free_port()
        given = {
            "database_url": database_url,
            "public_url": f"http://127.0.0.1:{port}",
            "smtp_host": "127.0.0.1",  # smtp_host=None: mail is off
            "smtp_port": mailbox.port,
            "smtp_tls": "none",
            "auth_failures_per_minute": 1_000_000,
        }
        settings = make_settings(**(given | overrides))
        server = await aiohttp_server(create_app(settings), host="127.0.0.1", port=port)
        return SignInServer(
            str(server.make_url("")).rstrip("/"), ServerParts(server.app), server.app, mailbox
        )

    return make


@pytest.fixture
async def server(make_server: Callable[..., Any], database_url: str) -> AsyncIterator[SignInServer]:
    yield await make_server(database_url)
