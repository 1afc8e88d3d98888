"""The phone gateway's settings, apart from the gateway so the parts it runs (the UAS,
dial-out, the trunk registration) can take them without importing the gateway."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Settings


@dataclass(frozen=True)
class PhoneSettings:
    """The gateway's settings (the app fills them from `PAIRWISE_SIP_*`)."""

    host: str = "0.0.0.0"
    port: int = 5060
    advertise_host: str | None = None  # address for SDP/Contact when behind NAT
    allowed_ips: frozenset[str] = frozenset()  # trunk/PBX source IPs; empty allows all
    max_call_seconds: float = 4 * 3600
    invite_rate: float = 5.0  # new INVITEs per second per source IP
    invite_burst: float = 20.0
    max_calls: int = 200
    pending_calls_per_source: int = 20  # calls from one address not yet in a room
    tcp_bind: str | None = None  # host:port for SIP over TCP (stream.py); off when None
    tls_bind: str | None = None  # host:port for SIP over TLS, with tls_cert and tls_key
    tls_cert: str | None = None  # PEM certificate chain
    tls_key: str | None = None  # PEM private key; both also shown to a trunk that asks (mTLS)
    tls_client_ca: str | None = None  # PEM bundle a TLS client's certificate must chain to
    stream_idle_seconds: float = 60.0  # a TCP/TLS connection quiet this long with no call
    trunk_uri: str | None = None  # sip:host[:port] to call out through ("call me")
    trunk_username: str | None = None
    trunk_password: str | None = None
    trunk_transport: str = "UDP"  # UDP | TCP | TLS: how REGISTER and dial-out reach it
    trunk_tls_ca: str | None = None  # PEM bundle verifying the trunk's certificate (TLS)
    trunk_srtp: str = "off"  # dial-out media: off | optional | required (SDES)
    trunk_register: bool = False  # REGISTER at the trunk (register.py)
    register_expires: int = 600  # lifetime asked for; refreshed at half what is granted
    register_retry_seconds: float = 5.0  # after a failed REGISTER, doubling ...
    register_retry_max_seconds: float = 300.0  # ... up to this
    dialout_prefixes: tuple[str, ...] = ()  # numbers that may be called (+44, +4930 ...)
    dialout_per_hour: int = 3  # "call me" requests per member and room
    rtp_host: str = "0.0.0.0"
    rtp_port_min: int = 20000
    rtp_port_max: int = 20999
    pin_digits: int = 6
    pin_tries: int = 3
    pin_timeout_seconds: float = 20.0  # per try, from the prompt or the last digit
    pin_failures_per_source: int = 10  # wrong PINs per source address per window (guessing.py)
    pin_failure_window_seconds: float = 600.0
    pin_failures_per_minute: int = 60  # from never-admitted sources together (guessing.py)
    ring_seconds: float = 0.0  # ringing before the answer
    media_timeout_seconds: float = 60.0  # no RTP from the caller for this long: hang up
    dial_in_number: str = ""  # shown to participants next to the room PIN
    room_pin_role: str = "mentee"  # role of a caller admitted by the room PIN
    voice_prompts: bool = True  # spoken prompts; False: tones (prompt.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> PhoneSettings:
        assert settings.sip_bind is not None
        host, port = cls.parse_bind(settings.sip_bind)
        return cls(
            host=host,
            port=port,
            advertise_host=settings.sip_advertise,
            allowed_ips=frozenset(settings.sip_allowed_ips),
            max_call_seconds=settings.sip_max_call_seconds,
            invite_rate=settings.sip_invites_per_second,
            invite_burst=settings.sip_invite_burst,
            max_calls=settings.sip_max_calls,
            pending_calls_per_source=settings.sip_pending_calls_per_source,
            tcp_bind=settings.sip_tcp_bind,
            tls_bind=settings.sip_tls_bind,
            tls_cert=settings.sip_tls_cert,
            tls_key=settings.sip_tls_key,
            tls_client_ca=settings.sip_tls_client_ca,
            stream_idle_seconds=settings.sip_stream_idle_seconds,
            trunk_uri=settings.sip_trunk_uri,
            trunk_username=settings.sip_trunk_username,
            trunk_password=settings.sip_trunk_password,
            trunk_transport=settings.sip_trunk_transport.upper(),
            trunk_tls_ca=settings.sip_trunk_tls_ca,
            trunk_srtp=settings.sip_trunk_srtp,
            trunk_register=settings.sip_trunk_register,
            register_expires=settings.sip_trunk_register_expires,
            dialout_prefixes=tuple(settings.sip_dialout_prefixes),
            dialout_per_hour=settings.sip_dialout_per_hour,
            rtp_host=host,
            rtp_port_min=settings.sip_rtp_port_min,
            rtp_port_max=settings.sip_rtp_port_max,
            pin_digits=settings.sip_pin_digits,
            pin_failures_per_source=settings.sip_pin_failures_per_source,
            pin_failures_per_minute=settings.sip_pin_failures_per_minute,
            media_timeout_seconds=settings.sip_media_timeout_seconds,
            dial_in_number=settings.sip_dialin_number or "",
            voice_prompts=settings.sip_prompts == "voice",
        )

    @property
    def rtp_ports(self) -> range:
        return range(self.rtp_port_min, self.rtp_port_max + 1)

    @staticmethod
    def parse_bind(value: str) -> tuple[str, int]:
        """`host`, `host:port` or `:port` → (host, port); port 5060 when absent."""
        host, sep, port = value.rpartition(":")
        if not sep:
            return value or "0.0.0.0", 5060
        return host or "0.0.0.0", int(port)
