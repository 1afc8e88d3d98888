"""Types of the C send path (server/media/_rtp_send.c)."""

def send_frame(
    fd: int,
    addr: bytes,
    protect: int,
    srtp: int,
    first: int,
    payload_type: int,
    seq: int,
    tail: bytes,
    payloads: list[bytes],
    history: list[bytes | None],
) -> tuple[int, list[bytes]]: ...
def send_packets(
    fd: int, addr: bytes, protect: int, srtp: int, packets: list[bytes]
) -> list[bytes]: ...
def sockaddr(host: str, port: int, family: int) -> bytes: ...
def gso() -> bool: ...
def set_gso(on: bool) -> None: ...
def runs(lengths: list[int]) -> list[int]: ...
