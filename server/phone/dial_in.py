"""What the dial-in PIN endpoints (phone/api.py) need, apart from them so the parts that
also use it (the media config, meetings) need not import a route module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.phone.pins import PinStore


@dataclass(frozen=True)
class DialIn:
    """What the PIN endpoints need (`phone.api.DIAL_IN`; None when the phone is off)."""

    pins: PinStore
    number: str  # the number to call, as shown to people ("+49 30 1234 5678")
    # Raises Forbidden (room_closed) for a room whose pair ended: no PIN is issued for it.
    require_open_room: Callable[[str], Awaitable[None]] | None = field(default=None)

    async def for_room(self, room: str) -> dict[str, str] | None:
        """Number and PIN for participants of `room`, if the room has a PIN."""
        pin = await self.pins.room_pin(room)
        return {"number": self.number, "pin": pin} if pin else None
