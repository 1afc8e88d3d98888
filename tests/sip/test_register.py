"""Registration at the trunk: sipp as the registrar checks the digest (401, qop=auth,
then the nonce reused with nc counting), grants a short Expires so the refresh comes
at once, and expects Expires: 0 when the gateway stops. A registrar that refuses the
password sees a few REGISTERs spaced by a growing backoff, never a tight loop, and the
operator sees `failed`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from server.api.http import error_middleware
from server.api.keys import SETTINGS
from server.config import load_settings
from server.phone import api, sip
from server.phone.register import RegistrationState
from tests.conftest import ADMIN
from tests.sip.conftest import SCENARIOS, PhoneFactory, UdpPeer, eventually
from tests.support.process import ADMIN_KEY
from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.sip]


async def test_registers_refreshes_before_expiry_and_unregisters_on_stop(
    make_phone: PhoneFactory,
) -> None:
    port = free_port()
    phone = await make_phone()  # for its sipp and working directory only
    errors = phone.workdir / "registrar.errors"
    registrar = await asyncio.create_subprocess_exec(
        phone.sipp_path, "-sf", str(SCENARIOS / "registrar.xml"), "-p", str(port), "-m", "1",
        "-i", "127.0.0.1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err",
        "-error_file", str(errors), cwd=phone.workdir,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    gateway = await make_phone(
        trunk_uri=f"sip:127.0.0.1:{port}",
        trunk_username="pairwise-user",
        trunk_password="s3cret",
        trunk_register=True,
    )
    registration = gateway.gateway.registration
    assert registration is not None
    await eventually(lambda: registration.status.registrations >= 1, timeout=20)
    assert registration.status.state == RegistrationState.REGISTERED
    assert gateway.metric("pairwise_phone_trunk_registered") == 1
    first_expiry = registration.status.expires_at
    assert first_expiry is not None and first_expiry - time.time() <= 2  # the registrar's 2 s
    # The refresh comes at half the granted 2 s, before the binding lapses.
    await eventually(lambda: registration.status.registrations >= 2, timeout=5)
    assert time.time() < first_expiry
    assert registration.status.expires_at and registration.status.expires_at - time.time() > 50

    await gateway.gateway.stop()  # → REGISTER with Expires: 0, answered 200
    assert registration.status.state == RegistrationState.UNREGISTERED
    assert gateway.metric("pairwise_phone_trunk_registered") == 0
    returncode = await asyncio.wait_for(registrar.wait(), 30)
    assert returncode == 0, errors.read_text() if errors.exists() else ""
    assert gateway.metric("pairwise_phone_trunk_registrations_total", result="failed") == 0


class Refusing(UdpPeer):
    """A registrar that challenges every REGISTER with a fresh nonce: no password is
    ever right. It notes when each REGISTER came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.authorised: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = sip.parse(data)
        self.times.append(time.monotonic())
        self.authorised.append(request.get("Authorization"))
        response = sip.SipMessage(
            status=401,
            reason="Unauthorized",
            headers=[
                *[(n, request.get(n)) for n in ("Via", "From", "To", "Call-ID", "CSeq")],
                ("WWW-Authenticate", f'Digest realm="t", nonce="n{len(self.times)}", qop="auth"'),
            ],
        )
        assert self.transport is not None
        self.transport.sendto(response.serialise(), addr)


async def test_a_wrong_password_shows_failed_and_backs_off(
    make_phone: PhoneFactory, aiohttp_client: Any
) -> None:
    loop = asyncio.get_running_loop()
    refusing = Refusing()
    await loop.create_datagram_endpoint(lambda: refusing, local_addr=("127.0.0.1", 0))
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{refusing.port}",
            trunk_username="pairwise-user",
            trunk_password="wrong",
            trunk_register=True,
            register_retry_seconds=0.4,
        )
        registration = phone.gateway.registration
        assert registration is not None
        await eventually(lambda: registration.status.failures >= 3, timeout=10)
        status = registration.status
        assert status.state == RegistrationState.FAILED
        assert (status.last_status, status.last_error) == (401, "401 credentials refused")
        assert phone.metric("pairwise_phone_trunk_registered") == 0
        assert phone.metric("pairwise_phone_trunk_registrations_total", result="failed") >= 3
        # Each attempt: a bare REGISTER, then one answer to its challenge; never more.
        times = refusing.times
        assert all(not a for a in refusing.authorised[0::2])
        assert all(a.startswith("Digest ") for a in refusing.authorised[1::2])
        gaps = [times[i] - times[i - 1] for i in range(2, len(times), 2)]  # attempt to attempt
        assert gaps[0] >= 0.4 and gaps[1] >= 0.8, gaps  # 0.4 s, doubling
        assert len(times) <= 8  # ~2.8 s of failing: a handful of REGISTERs, no flood

        app = web.Application(middlewares=[error_middleware])
        app[SETTINGS] = load_settings(admin_key=ADMIN_KEY)
        app[api.PHONE] = phone.gateway
        api.routes.install(app)
        client = await aiohttp_client(app)
        shown = await (await client.get("/api/v1/phone/trunk", headers=ADMIN)).json()
        assert shown["state"] == "failed" and shown["registers"] is True
        assert shown["last_status"] == 401 and shown["failures"] >= 3
        assert 0 <= shown["next_attempt_in"] <= 300 and shown["expires_in"] is None
        assert (await client.get("/api/v1/phone/trunk")).status == 401
    finally:
        refusing.close()


class Rechallenging(UdpPeer):
    """A registrar whose nonce goes stale after one use: the refresh's reused nonce
    gets a new challenge, which the gateway must answer (nc back to 1), not give up."""

    def __init__(self) -> None:
        super().__init__()
        self.authorised: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = sip.parse(data)
        auth = request.get("Authorization")
        self.authorised.append(auth)
        answer = [(n, request.get(n)) for n in ("Via", "From", "To", "Call-ID", "CSeq")]
        contact = request.get("Contact")
        step = len(self.authorised)
        if step in (1, 3):
            nonce = "first" if step == 1 else "second"
            stale = ", stale=true" if step == 3 else ""
            header = f'Digest realm="t", nonce="{nonce}", qop="auth"{stale}'
            response = sip.SipMessage(
                status=401, reason="Unauthorized", headers=[*answer, ("WWW-Authenticate", header)]
            )
        else:
            expires = "1" if step == 2 else "60"
            response = sip.SipMessage(
                status=200,
                reason="OK",
                headers=[*answer, ("Contact", f"{contact};expires={expires}")],
            )
        assert self.transport is not None
        self.transport.sendto(response.serialise(), addr)


async def test_a_stale_nonce_on_refresh_is_answered_afresh(make_phone: PhoneFactory) -> None:
    loop = asyncio.get_running_loop()
    registrar = Rechallenging()
    await loop.create_datagram_endpoint(lambda: registrar, local_addr=("127.0.0.1", 0))
    try:
        phone = await make_phone(
            trunk_uri=f"sip:127.0.0.1:{registrar.port}",
            trunk_username="pairwise-user",
            trunk_password="s3cret",
            trunk_register=True,
        )
        registration = phone.gateway.registration
        assert registration is not None
        await eventually(lambda: registration.status.registrations >= 2, timeout=10)
        assert registration.status.failures == 0
        assert registration.status.state == RegistrationState.REGISTERED
        first, answered, reused, fresh = registrar.authorised[:4]
        assert first == ""
        assert 'nonce="first"' in answered and "nc=00000001" in answered
        assert 'nonce="first"' in reused and "nc=00000002" in reused  # the refresh
        assert 'nonce="second"' in fresh and "nc=00000001" in fresh
        assert 'uri="sip:127.0.0.1:' in fresh and 'username="pairwise-user"' in fresh
    finally:
        registrar.close()
