"""Sending push notifications, and whether a person wants them.

A notice to a person becomes one durable job per subscribed browser (`server.jobs`), so a
restart neither loses nor repeats it and a push service that is down is retried with
backoff. The job encrypts the payload for that browser (aes128gcm, RFC 8291) and signs a
VAPID JWT (RFC 8292) with pywebpush; a 404 or 410 from the push service means the browser
unsubscribed, and the subscription is deleted rather than retried.

What a notice says is seen by the push service only encrypted, but is shown on a lock
screen: callers put a short title and body in it, never a chat message's text.

The endpoint is a URL a browser handed us, so it is treated as the webhooks' URLs are
(server/webhooks/delivery.py): https to a public host, every name resolved through
`PublicResolver`, and no redirect followed (a push service never redirects).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from server.jobs.runner import JobRunner
from server.jobs.store import Job
from server.push.keys import VapidKeys
from server.push.store import Channels, PushStore
from server.webhooks.delivery import PublicResolver, is_public

log = logging.getLogger("pairwise.push")

KIND = "push.send"
GONE = frozenset({404, 410})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Notice:
    title: str
    body: str
    url: str  # opened when the notification is clicked
    ttl_seconds: int = 3600  # a reminder not delivered in time is not worth showing later


class PushGone(Exception):
    """The push service no longer knows the subscription."""


def check_endpoint(endpoint: str, *, allow_insecure: bool) -> None:
    """ValueError unless `endpoint` is a push service we may post to: https to a public
    host; http (and loopback or private addresses) only with `allow_insecure` (tests)."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        raise ValueError("the endpoint is not an absolute URL")
    host = host.rstrip(".")
    local = host in LOOPBACK_NAMES or host.endswith(".localhost")
    literal = host.replace(".", "").isdigit() or ":" in host
    private = literal and not is_public(host)
    if parts.scheme == "https" and not (local or private):
        return
    if allow_insecure and parts.scheme in ("http", "https") and (local or private):
        return
    raise ValueError("the endpoint must be an https URL of a push service")


class Push:
    def __init__(
        self,
        store: PushStore,
        jobs: JobRunner,
        keys: VapidKeys,
        *,
        subject: str,
        timeout_seconds: float = 10.0,
        allow_insecure: bool = False,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.keys = keys
        self.subject = subject
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.allow_insecure = allow_insecure
        self._vapid = Vapid02.from_pem(keys.private_pem)
        self._http: aiohttp.ClientSession | None = None
        jobs.handle(KIND, self._send_job)

    @property
    def public_key(self) -> str:
        return self.keys.public_key

    async def wants(self, identity: str, topic: str) -> Channels:
        """The channels that reach `identity` about `topic` now: push only while they
        have a browser subscribed."""
        chosen = (await self.store.channels(identity))[topic]
        if chosen.push and await self.store.count(identity) == 0:
            return Channels(email=chosen.email, push=False)
        return chosen

    async def notify(self, identity: str, notice: Notice, *, key: str) -> int:
        """Queue `notice` to each of `identity`'s browsers, once per `key` (a retried caller
        queues nothing twice); how many were queued."""
        queued = 0
        for subscription in await self.store.of(identity):
            payload = {
                "subscription": subscription.id,
                "title": notice.title,
                "body": notice.body,
                "url": notice.url,
                "ttl": notice.ttl_seconds,
            }
            digest = hashlib.sha256(key.encode()).hexdigest()[:24]
            if await self.jobs.schedule(
                KIND, payload, self.jobs.clock(), key=f"push:{digest}:{subscription.id}"
            ):
                queued += 1
        return queued

    async def _send_job(self, job: Job) -> None:
        subscription = await self.store.get(int(job.payload["subscription"]))
        if subscription is None:
            return  # unsubscribed since
        data = json.dumps({k: job.payload[k] for k in ("title", "body", "url")}, ensure_ascii=False)
        try:
            await self.send(
                subscription.endpoint,
                subscription.p256dh,
                subscription.auth,
                data,
                ttl=int(job.payload["ttl"]),
            )
        except PushGone:
            await self.store.remove(subscription.id)
            log.info("push subscription gone; removed", extra={"subscription": subscription.id})

    async def send(self, endpoint: str, p256dh: str, auth: str, data: str, *, ttl: int) -> None:
        """Post one encrypted message; PushGone for 404/410, WebPushException (retried by
        the job) for any other failure."""
        if self._http is None or self._http.closed:
            redirects = aiohttp.TraceConfig()
            redirects.on_request_redirect.append(_refuse_redirect)
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=None if self.allow_insecure else PublicResolver()
                ),
                timeout=self.timeout,
                trace_configs=[redirects],
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        try:
            await webpush_async(
                {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
                data,
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self.subject},
                content_encoding="aes128gcm",
                ttl=ttl,
                timeout=self.timeout,  # passed on to aiohttp.post (a float there is deprecated)
                aiohttp_session=self._http,
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status", None) or getattr(
                exc.response, "status_code", None
            )
            if status in GONE:
                raise PushGone(str(status)) from None
            if status is None:  # no answer (refused redirect, timeout, connection)
                raise
            raise WebPushException(f"the push service answered {status}") from None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


async def _refuse_redirect(session: object, context: object, params: object) -> None:
    raise WebPushException("the push service redirected; not followed")
