"""ICE servers: what clients are told to use, and what the SFU itself uses.

Only what Settings lists, never aiortc's or a browser's public default. TURN
credentials are time-limited in the coturn REST style (`use-auth-secret`): the
username is `expiry:identity` and the password is base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy

from server.config import Settings


def turn_credentials(
    secret: str, identity: str, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    """(username, password) valid for `ttl_seconds` from `now`."""
    expiry = int(now if now is not None else time.time()) + ttl_seconds
    username = f"{expiry}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _is_turn(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


def client_ice_servers(
    settings: Settings, identity: str, now: float | None = None
) -> list[dict[str, Any]]:
    """The `iceServers` a client passes to `new RTCPeerConnection(...)`."""
    stun = [url for url in settings.ice_servers if not _is_turn(url)]
    turn = [url for url in settings.ice_servers if _is_turn(url)]
    servers: list[dict[str, Any]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and settings.turn_secret:
        username, credential = turn_credentials(
            settings.turn_secret, identity, settings.turn_ttl_seconds, now
        )
        servers.append({"urls": turn, "username": username, "credential": credential})
    return servers


def sfu_configuration(settings: Settings) -> RTCConfiguration:
    """The SFU's own PeerConnection configuration: STUN only (it does not relay through
    TURN), one transport for all media, and an explicit list so aiortc never falls back
    to its public STUN default."""
    stun = [url for url in settings.ice_servers if url.startswith(("stun:", "stuns:"))]
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=stun)] if stun else [],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
