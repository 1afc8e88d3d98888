"""The part every UDP socket of the gateway shares (SIP signalling, each call's RTP)."""

from __future__ import annotations

import asyncio
from typing import cast


class UdpEndpoint(asyncio.DatagramProtocol):
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport is not a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def local_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def sendto(self, data: bytes, addr: tuple[str, int]) -> bool:
        """Send unless the socket is closed; whether it was sent."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.sendto(data, addr)
        return True
