"""OpenID Connect single sign-on: the authorization code flow with PKCE, for organisations
with an identity provider (`PAIRWISE_OIDC_ISSUER`, `_CLIENT_ID`, `_CLIENT_SECRET`).

The browser's round trip is bound to it by a signed cookie holding the `state`, the `nonce`
and the PKCE verifier: a callback whose `state` is not the one this browser started with is
refused (login CSRF), and so is an ID token whose issuer, audience, expiry or nonce is not
the expected one. The ID token comes straight from the token endpoint over the back channel
and is checked against the issuer's published keys (JWKS). Its `email` claim must belong to
an active account: an unknown email is refused, never created.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from server.errors import Forbidden

FLOW_SECONDS = 600
DISCOVERY_SECONDS = 3600


class OidcFailed(Forbidden):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="oidc_failed")


@dataclass(frozen=True)
class Flow:
    """What the browser's cookie carries between leaving for the issuer and coming back."""

    state: str
    nonce: str
    verifier: str
    expires_at: float


class OidcClient:
    def __init__(
        self, issuer: str, client_id: str, client_secret: str, redirect_uri: str, key: str
    ):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._key = key.encode()
        self._discovery: tuple[float, dict[str, Any]] | None = None

    async def start(self) -> tuple[str, str]:
        """The issuer's authorization URL to send the browser to, and the cookie value that
        binds the flow to this browser."""
        config = await self._config()
        flow = Flow(
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
            time.time() + FLOW_SECONDS,
        )
        url = add_params_to_uri(
            config["authorization_endpoint"],
            [
                ("response_type", "code"),
                ("client_id", self.client_id),
                ("redirect_uri", self.redirect_uri),
                ("scope", "openid email profile"),
                ("state", flow.state),
                ("nonce", flow.nonce),
                ("code_challenge", create_s256_code_challenge(flow.verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return url, self._seal(flow)

    async def finish(self, cookie: str | None, state: str | None, code: str | None) -> str:
        """The verified email of the person the issuer sent back, or OidcFailed."""
        flow = self._open(cookie)
        if not state or not hmac.compare_digest(state, flow.state):
            raise OidcFailed("this sign-in was not started in this browser: start again")
        if not code:
            raise OidcFailed("the identity provider sent no authorization code")
        config = await self._config()
        tokens = await self._post(
            config["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": flow.verifier,
                "client_id": self.client_id,
            },
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcFailed("the identity provider sent no ID token")
        keys = KeySet.import_key_set(await self._get(config["jwks_uri"]))  # type: ignore[arg-type]
        try:
            token = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": config.get("issuer", self.issuer)},
                aud={"essential": True, "value": self.client_id},
                nonce={"essential": True, "value": flow.nonce},
                exp={"essential": True},
                email={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise OidcFailed(f"the ID token was refused: {exc}") from None
        # Only an address the provider says it verified: one that leaves the claim out may
        # let anyone put anyone's address (an admin's) on their own account there.
        if token.claims.get("email_verified") is not True:
            raise OidcFailed("the identity provider has not verified this email")
        return str(token.claims["email"])

    async def _config(self) -> dict[str, Any]:
        if self._discovery is None or self._discovery[0] < time.time():
            config = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(config.get(name), str):
                    raise OidcFailed(f"the issuer's discovery document has no {name}")
            self._discovery = (time.time() + DISCOVERY_SECONDS, config)
        return self._discovery[1]

    async def _get(self, url: str) -> dict[str, Any]:
        return await self._call("GET", url)

    async def _post(self, url: str, form: dict[str, str]) -> dict[str, Any]:
        return await self._call("POST", url, form)

    async def _call(self, method: str, url: str, form: dict[str, str] | None = None) -> Any:
        headers = (
            {"Authorization": aiohttp.encode_basic_auth(self.client_id, self._client_secret)}
            if form
            else {}
        )
        timeout = aiohttp.ClientTimeout(total=15)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.request(method, url, data=form, headers=headers) as response,
            ):
                payload = await response.json(content_type=None)
                if response.status != 200 or not isinstance(payload, dict):
                    raise OidcFailed(f"the identity provider answered {response.status}")
                return payload
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise OidcFailed(f"the identity provider could not be reached: {exc}") from None

    def _seal(self, flow: Flow) -> str:
        body = base64.urlsafe_b64encode(json.dumps(flow.__dict__).encode()).decode()
        return f"{body}.{self._mac(body)}"

    def _open(self, cookie: str | None) -> Flow:
        body, _, mac = (cookie or "").partition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            raise OidcFailed("this sign-in was not started in this browser: start again")
        try:
            flow = Flow(**json.loads(base64.urlsafe_b64decode(body)))
        except (ValueError, TypeError):
            raise OidcFailed("this sign-in was not started in this browser") from None
        if flow.expires_at < time.time():
            raise OidcFailed("this sign-in took too long: start again")
        return flow

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, b"oidc:" + body.encode(), hashlib.sha256).hexdigest()
