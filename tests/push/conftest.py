"""A push service on loopback (an aiohttp app the test starts) that decrypts what it is
sent with the subscriber's keys and checks the VAPID signature; and a Pairwise server with
sign-in, mail to a real SMTP server (`mailbox`) and jobs run when the test says."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import http_ece
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from server.jobs.clock import ManualClock
from server.pairs.model import Pair
from tests.signin.conftest import (  # noqa: F401  (fixtures)
    Browser,
    Mailbox,
    SignInServer,
    mailbox,
    make_server,
)
from tests.support.services import free_port

# Saturday 2 March 2030, 12:00 UTC.
T0 = 1_898_683_200.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class BrowserKeys:
    """What a browser makes when it subscribes: a P-256 key pair and an auth secret."""

    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )


@dataclass
class Received:
    name: str
    payload: dict[str, Any]
    vapid_claims: dict[str, Any]
    vapid_key: str
    ttl: int


class PushService:
    """A push service: `POST /push/{name}` for each subscription `subscribe(name)` made.
    It answers `status[name]` (201 by default), decrypts each message (aes128gcm) and
    verifies the VAPID JWT against the key the request names."""

    def __init__(self) -> None:
        self.port = free_port()
        self.keys: dict[str, BrowserKeys] = {}
        self.status: dict[str, int] = {}
        self.redirect: dict[str, str] = {}  # name -> where a 307 sends the sender
        self.received: list[Received] = []
        self.errors: list[str] = []
        self._runner: web.AppRunner | None = None

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/{name}"

    def subscription(self, name: str) -> dict[str, Any]:
        keys = self.keys.setdefault(name, BrowserKeys())
        return {
            "endpoint": self.endpoint(name),
            "expirationTime": None,
            "keys": {"p256dh": keys.p256dh, "auth": b64url(keys.auth)},
        }

    async def _receive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            self.received.append(await self._open(name, request))
        except Exception as exc:  # recorded: the test asserts there were none
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400)
        if name in self.redirect:
            return web.Response(status=307, headers={"Location": self.redirect[name]})
        return web.Response(status=self.status.get(name, 201))

    async def _open(self, name: str, request: web.Request) -> Received:
        assert request.headers["Content-Encoding"] == "aes128gcm"
        scheme, _, params = request.headers["Authorization"].partition(" ")
        assert scheme == "vapid", scheme
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        claims = verify_jwt(parts["t"], parts["k"])
        keys = self.keys[name]
        plain = http_ece.decrypt(
            await request.read(),
            private_key=keys.private,
            auth_secret=keys.auth,
            version="aes128gcm",
        )
        return Received(name, json.loads(plain), claims, parts["k"], int(request.headers["TTL"]))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{name}", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def verify_jwt(token: str, public_key: str) -> dict[str, Any]:
    """The claims of an ES256 JWT signed by the key `public_key` (base64url P-256 point)."""
    header, payload, signature = token.split(".")
    assert json.loads(unb64url(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    assert len(raw) == 64
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(public_key))
    key.verify(
        encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:])),
        f"{header}.{payload}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )  # InvalidSignature otherwise
    return dict(json.loads(unb64url(payload)))


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.stop()


@dataclass
class Setup:
    server: SignInServer
    clock: ManualClock
    pair: Pair
    ada: Browser  # mentor
    bo: Browser  # mentee

    async def run_jobs(self) -> int:
        assert self.server.services.jobs is not None
        return await self.server.services.jobs.run_due()


MakeSetup = Callable[..., Any]


@pytest.fixture
async def make_setup(make_server: Callable[..., Any]) -> AsyncIterator[MakeSetup]:  # noqa: F811
    browsers: list[Browser] = []

    async def make(database_url: str | None = None, **overrides: Any) -> Setup:
        server: SignInServer = await make_server(
            database_url,
            meetings_reminder_minutes=[15],
            vapid_subject="mailto:ops@pairwise.example.org",
            **overrides,
        )
        jobs = server.services.jobs
        assert jobs is not None
        # Jobs run when the test says, on a clock it moves (as tests/meetings do).
        await jobs.stop()
        clock = ManualClock(T0)
        jobs.clock = clock
        await server.participant("ada-1", "ada@example.org", "Ada")
        await server.participant("bo-2", "bo@example.org", "Bo")
        made = await server.admin(
            "POST",
            "/api/v1/pairs",
            {
                "room": "room-1",
                "members": [
                    {"identity": "ada-1", "name": "Ada", "role": "mentor"},
                    {"identity": "bo-2", "name": "Bo", "role": "mentee"},
                ],
            },
        )
        assert server.services.sessionlog is not None
        pair = await server.services.sessionlog.pairs.get(made["id"])
        ada = await server.signed_in("ada@example.org")
        bo = await server.signed_in("bo@example.org")
        browsers.extend([ada, bo])
        return Setup(server, clock, pair, ada, bo)

    yield make
    for browser in browsers:
        await browser.close()
