"""The one Settings object. Environment variables `PAIRWISE_*`, overridden by CLI flags.

No other module reads the environment: parts receive the Settings they need.
"""

from __future__ import annotations

import os
import re
import secrets
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.event_loop import EventLoopName


class SettingsError(Exception):
    """Settings that cannot start the server; the message is one line for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAIRWISE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str | None = Field(
        None,
        description="Base URL that join links point to, and the only own origin when set;"
        " defaults to http://host:port",
    )
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite+aiosqlite under data_dir"
    )
    redis_url: str | None = None
    cluster: str = Field(
        "pairwise",
        pattern=r"^[a-z0-9_-]{1,40}$",
        description="Namespace for Redis channels and keys: nodes of one deployment share it",
    )
    node_id: str | None = Field(
        None, description="This node's name in the cluster (default host:port)"
    )
    heartbeat_seconds: float = Field(2.0, gt=0, description="how often a node reports its load")
    node_ttl_seconds: float = Field(6.0, gt=0, description="a node silent this long is dead")
    admin_key: str | None = Field(None, min_length=16)
    secret_key: str | None = Field(None, min_length=16, description="JWT signing key")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: EventLoopName = Field(
        "uvloop", description="the event loop of the server and its media workers"
    )
    token_ttl_seconds: int = Field(24 * 3600, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses/CIDRs of reverse proxies whose X-Forwarded-* headers are believed",
    )

    # rooms and chat
    room_capacity: int = Field(8, ge=1, le=500)
    room_grace_seconds: float = Field(30.0, ge=0)
    history_limit: int = Field(50, ge=1, le=500)
    chat_max_chars: int = Field(4000, ge=1)
    chat_rate_per_second: float = Field(5.0, gt=0)
    chat_burst: int = Field(10, ge=1)
    events_rate_per_second: float = Field(50.0, gt=0)
    events_burst: int = Field(100, ge=1)
    max_message_bytes: int = Field(64 * 1024, ge=1024)
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    tokens_per_minute: float = Field(600, gt=0, description="token requests per client address")
    auth_failures_per_minute: float = Field(20, gt=0, description="wrong keys per client address")
    connect_timeout_seconds: float = Field(
        5.0, gt=0, description="an Engine.IO socket with no Socket.IO CONNECT by then is closed"
    )
    connections_per_address: int = Field(
        50, ge=1, description="concurrent Engine.IO connections from one client address"
    )

    # data rights
    retention_days: float | None = Field(
        None,
        gt=0,
        description="ended pairs' chat and transcripts are deleted after this; off when unset",
    )
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="how often the retention job runs"
    )

    # media (the SFU)
    ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs handed to clients and used by the SFU; never a public default",
    )
    turn_secret: str | None = Field(None, description="coturn static-auth-secret (REST style)")
    turn_ttl_seconds: int = Field(3600, gt=0)
    media_silence_seconds: float = Field(5.0, gt=0, description="no inbound RTP → step down")
    media_ice_timeout_seconds: float = Field(5.0, gt=0, description="ICE not connected → text")
    media_loss_step_down_percent: float = Field(20.0, gt=0, le=100)
    media_liveness_seconds: float = Field(
        3.0, gt=0, description="one who sends no media unheard from → connection dead"
    )
    media_recover_seconds: float = Field(5.0, gt=0, description="healthy this long → step up")
    media_answer_timeout_seconds: float = Field(
        15.0, gt=0, description="the client's answer to an SFU re-offer waited for this long"
    )
    media_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        le=256,
        description="SFU worker processes, each room pinned to one (default: one per core); "
        "0 runs the SFU in the main process",
    )

    # mail (server/mail.py): sign-in links, invitations, reminders, digests
    smtp_host: str | None = Field(None, description="SMTP server; mail is off when unset")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="none (loopback relays), STARTTLS, or implicit TLS"
    )
    smtp_from: str = Field("Pairwise <pairwise@localhost>", description="the From: of mail sent")

    # sign-in (server/signin): sessions, one-time links, optional OpenID Connect
    session_days: float = Field(180.0, gt=0, le=3650, description="longest a session lasts")
    session_idle_days: float = Field(
        30.0, gt=0, le=3650, description="a session unused this long ends"
    )
    signin_link_minutes: float = Field(15.0, gt=0, le=24 * 60, description="a link's lifetime")
    signin_links_per_hour: int = Field(5, ge=1, description="links mailed per address per hour")
    oidc_issuer: str | None = Field(None, description="OpenID Connect issuer URL; off when unset")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None

    # durable jobs (server/jobs): reminders, digests, webhook retries
    jobs_poll_seconds: float = Field(5.0, gt=0, description="how often a node looks for due jobs")
    jobs_lease_seconds: float = Field(
        300.0, gt=0, description="a job a node took and did not finish in this long runs again"
    )
    jobs_max_attempts: int = Field(8, ge=1, description="tries before a job is failed for good")

    # meetings (server/meetings): reminders by email
    meetings_reminder_minutes: list[int] = Field(
        default_factory=lambda: [24 * 60, 15],
        description="reminders go this many minutes before each meeting",
    )
    meetings_absent_minutes: int = Field(
        5, ge=1, le=120, description="minutes after the start to tell a missing member"
    )
    digest_after_minutes: float = Field(
        15.0, gt=0, description="chat unread this long goes into an email digest"
    )
    digest_every_minutes: float = Field(
        60.0, gt=0, description="at most one digest per person this often"
    )

    # web push (server/push): reminders and new-message notifications to browsers
    vapid_subject: str = Field(
        "mailto:pairwise@localhost",
        pattern=r"^(mailto:[^\s@]+@[^\s@]+|https://\S+)$",
        description="the VAPID contact push services see (mailto: or https:)",
    )
    push_allow_insecure: bool = Field(
        False, description="accept http:// push endpoints on loopback (tests only)"
    )
    push_max_subscriptions: int = Field(
        10, ge=1, le=100, description="browsers one person may subscribe for push"
    )

    # webhooks (server/webhooks): events to integrations, Slack and Microsoft Teams
    webhook_allow_private: bool = Field(
        False,
        description="deliver to loopback, private and link-local addresses too (no SSRF guard)",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="a receiver that has not answered by then has failed"
    )
    webhook_max_attempts: int = Field(8, ge=1, le=30, description="tries before a delivery fails")
    webhook_retry_seconds: float = Field(
        30.0, gt=0, description="the first retry waits this long, each next one twice as long"
    )
    webhook_quiet_days: int = Field(
        14, ge=1, le=365, description="an active pair with no meeting or message this long is quiet"
    )

    # inbound mail (server/mailin): replies to the chat digest land in the pair's chat
    inbound_smtp_host: str = Field(
        "127.0.0.1", description="where the inbound SMTP endpoint listens"
    )
    inbound_smtp_port: int | None = Field(
        None, ge=0, le=65535, description="inbound SMTP port; no endpoint on this node when unset"
    )
    inbound_domain: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$",
        description="domain of reply addresses (its MX reaches the endpoint);"
        " digests carry none when unset",
    )
    inbound_max_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest reply accepted, headers and quoted text included"
    )

    # phone (SIP dial-in)
    sip_bind: str | None = Field(None, description="host:port for SIP over UDP; off when unset")
    sip_allowed_ips: list[str] = Field(
        default_factory=list, description="trunk allow-list: addresses or networks"
    )
    sip_max_call_seconds: int = Field(4 * 3600, gt=0)
    sip_invites_per_second: float = Field(5.0, gt=0)
    sip_dialin_number: str | None = Field(None, description="number shown to participants")
    sip_advertise: str | None = Field(None, description="public address for SDP/Contact (NAT)")
    sip_rtp_port_min: int = Field(20000, ge=1024, le=65535)
    sip_rtp_port_max: int = Field(20999, ge=1024, le=65535)
    sip_invite_burst: int = Field(20, ge=1)
    sip_max_calls: int = Field(200, ge=1)
    sip_pin_digits: int = Field(6, ge=4, le=12)
    sip_media_timeout_seconds: float = Field(60.0, gt=0)
    sip_pin_failures_per_source: int = Field(
        10, ge=1, description="wrong PINs per source address per 10 minutes; then 403"
    )
    sip_pin_failures_per_minute: int = Field(
        60, ge=1, description="wrong PINs per minute from every source together; then unchecked"
    )
    sip_prompts: Literal["voice", "tones"] = Field(
        "voice", description="what a caller hears: spoken English prompts, or tones"
    )
    sip_pending_calls_per_source: int = Field(
        20, ge=1, description="calls at once from one address not yet in a room; then 503"
    )
    sip_tcp_bind: str | None = Field(None, description="host:port for SIP over TCP; off when unset")
    sip_tls_bind: str | None = Field(None, description="host:port for SIP over TLS; off when unset")
    sip_tls_cert: str | None = Field(None, description="PEM certificate chain for SIP over TLS")
    sip_tls_key: str | None = Field(None, description="PEM private key for SIP over TLS")
    sip_tls_client_ca: str | None = Field(
        None,
        description="PEM CA bundle: TLS clients (the trunk, a PBX) must present a certificate "
        "it signs (mutual TLS); any client when unset",
    )
    sip_stream_idle_seconds: float = Field(
        60.0, gt=0, description="a TCP/TLS connection quiet this long with no call is closed"
    )
    sip_trunk_uri: str | None = Field(None, description="sip:host[:port] to call out through")
    sip_trunk_username: str | None = Field(None, description="digest user name at the trunk")
    sip_trunk_password: str | None = Field(None, description="digest password at the trunk")
    sip_trunk_transport: Literal["udp", "tcp", "tls"] = Field(
        "udp", description="how REGISTER and dial-out reach the trunk (tls: port 5061 by default)"
    )
    sip_trunk_tls_ca: str | None = Field(
        None, description="PEM CA bundle that signs the trunk's TLS certificate (default: system)"
    )
    sip_trunk_srtp: Literal["off", "optional", "required"] = Field(
        "off", description="SRTP (SDES) on dial-out: off, offered best-effort, or required"
    )
    sip_trunk_register: bool = Field(
        False, description="register at the trunk so calls to its number reach dial-in"
    )
    sip_trunk_register_expires: int = Field(
        600, ge=1, description="registration lifetime asked for; refreshed at half the granted"
    )
    sip_dialout_prefixes: list[str] = Field(
        default_factory=list, description="number prefixes 'call me' may dial (+44, +4930)"
    )
    sip_dialout_per_hour: int = Field(3, ge=1, description="'call me' requests per member")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("sqlite+aiosqlite://", "postgresql+asyncpg://")
        ):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("trusted_proxies", "sip_allowed_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or CIDR") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("sip_dialout_prefixes")
    @classmethod
    def _dialout_prefixes(cls, value: list[str]) -> list[str]:
        # "" or "+" would let "call me" dial every number on earth (premium ones too), and
        # "4930" or "+49 30" would silently match none.
        for prefix in value:
            if not re.fullmatch(r"\+[1-9][0-9]{0,14}", prefix):
                raise ValueError(f"{prefix!r} is not a number prefix like +44 or +4930")
        return value

    @property
    def filled_admin_key(self) -> str:
        """The admin key, which `with_secrets()` fills in (`create_app` refuses settings
        without it)."""
        assert self.admin_key is not None, "with_secrets() fills it before start"
        return self.admin_key

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'pairwise.db'}"

    @property
    def node_name(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Read the environment, apply the overrides (CLI flags; None means "not given")."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        raise SettingsError(f"invalid setting PAIRWISE_{field.upper()}: {error['msg']}") from None


def with_secrets(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill in the admin key and signing key from `data_dir` when not configured.

    Returns the completed settings and the names of the secrets newly created.
    """
    created = []
    filled: dict[str, str] = {}
    for field, filename in (("admin_key", "admin_key"), ("secret_key", "secret_key")):
        if getattr(settings, field) is None:
            value, new = persistent_secret(settings, filename)
            filled[field] = value
            if new:
                created.append(filename)
    return settings.model_copy(update=filled), created


def persistent_secret(settings: Settings, name: str) -> tuple[str, bool]:
    """Return the secret stored as `data_dir/name`, creating it on first use.

    The second value says whether it was just created (so the CLI can print it once).
    """
    path = settings.data_dir / name
    if path.exists():
        return path.read_text().strip(), False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value, True
