"""CSRF tokens: what a cross-site page cannot know, checked on every state-changing request
made with a session cookie.

The cookie alone proves nothing (a form on another site can make the browser send it), so a
request that changes something must also carry `X-CSRF-Token`, an HMAC of the session's own
secret that only this origin's pages can read (`GET /api/v1/signin/session`), and, when the
browser says where it comes from, an `Origin` of this server. SameSite=Lax already keeps the
cookie off cross-site POSTs in current browsers; these checks do not rely on it.

Before anyone is signed in, confirming a sign-in link is protected the same way with a
double-submit pair: a random cookie set when the confirm page asks about the link, and the
HMAC of it in the header (login CSRF: another site must not sign a visitor in as someone).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_for(key: str, purpose: str, secret: str) -> str:
    """The CSRF token bound to `secret` (a session's cookie, or a pre-sign-in nonce)."""
    mac = hmac.new(key.encode(), f"{purpose}:{secret}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def matches(key: str, purpose: str, secret: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(token_for(key, purpose, secret), given or "")


def changes_state(method: str) -> bool:
    return method.upper() not in SAFE_METHODS
