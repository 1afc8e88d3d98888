"""Types of the C send path (server/media/_rtp_send.c)."""

from collections.abc import Callable
from typing import Any

class Wire:
    def __init__(
        self,
        session: object,
        srtp: int,
        protect: int,
        sock: Any,
        addr: bytes,
        sendto: Callable[[bytes, Any], None],
        remote: Any,
    ) -> None: ...
    @property
    def fd(self) -> int: ...
    @property
    def gso(self) -> bool: ...
    def watch(
        self,
        dtls: object,
        connected: object,
        connection: object,
        pair: object,
        udp: object,
        max_backlog: int | None,
    ) -> None: ...
    def count_to(self, sender: object, dtls: object) -> None: ...
    def current(self) -> bool: ...
    def frame(
        self,
        first: int,
        payload_type: int,
        seq: int,
        tail: bytes,
        payloads: list[bytes],
        history: list[bytes | None],
        payload_octets: int = ...,
        timestamp: int = ...,
        ntp: int = ...,
    ) -> int: ...
    def packets(self, packets: list[bytes]) -> bool: ...

class Stream:
    def __init__(
        self,
        history: list[bytes | None],
        ssrc: int,
        payload_type: int,
        seq: int,
        origin: int,
        block: tuple[bytes, bool, bytes],
        leveled_block: tuple[bytes, bool, bytes],
        level_id: int,
        budget_cap: int,
    ) -> None: ...
    wire: Wire | None
    room: object | None
    seq: int
    origin: int
    budget: int
    @property
    def last(self) -> tuple[int, int] | None: ...
    @property
    def packets(self) -> int: ...
    @property
    def frames(self) -> int: ...
    def send(self, frame: object) -> bool: ...

def fan_out(streams: list[Stream], frame: object) -> list[int]: ...
def sockaddr(host: str, port: int, family: int) -> bytes: ...
def gso() -> bool: ...
def set_gso(on: bool) -> None: ...
def runs(lengths: list[int]) -> list[int]: ...
