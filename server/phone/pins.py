"""Dial-in PINs: each room can have one; a participant can have a personal one.

A room PIN lets anyone with it into the room as "phone caller N". A personal PIN
also says who is calling, so the room shows the mentee (now in phone mode), not an
unknown number. PINs are random digits, unique across both kinds.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.errors import Conflict
from server.store import Database
from server.store.schema import phone_participant_pins, phone_room_pins, removals

ISSUE_ATTEMPTS = 20


@dataclass(frozen=True)
class PinMatch:
    """Where a PIN leads: a room, and for a personal PIN the person."""

    room: str
    identity: str | None = None
    name: str | None = None
    role: str | None = None
    removed: bool = False  # the person was removed from the room after this PIN was issued


class PinDirectory(Protocol):
    """What the gateway needs to admit a caller."""

    async def resolve(self, pin: str) -> PinMatch | None: ...

    async def rotate_room_pin(self, room: str) -> str | None: ...


class PinStore:
    def __init__(self, database: Database, digits: int = 6):
        self._db = database
        self.digits = digits

    async def room_pin(self, room: str) -> str | None:
        async with self._db.connect() as conn:
            found = await conn.scalar(
                select(phone_room_pins.c.pin).where(phone_room_pins.c.room == room)
            )
        return str(found) if found is not None else None

    async def ensure_room_pin(self, room: str) -> str:
        """The room's PIN, created on first use."""
        for _ in range(ISSUE_ATTEMPTS):
            existing = await self.room_pin(room)
            if existing is not None:
                return existing
            try:
                async with self._db.begin() as conn:
                    pin = await self._unused_pin(conn)
                    await conn.execute(
                        insert(phone_room_pins).values(room=room, pin=pin, created_at=time.time())
                    )
                return pin
            except IntegrityError:
                continue  # the PIN or the room was taken meanwhile: look again
        raise Conflict("could not issue a unique PIN; use more PIN digits", code="pin_space_full")

    async def rotate_room_pin(self, room: str) -> str | None:
        """Replace the room's PIN with a new one (None when it has none): after someone
        was removed, the PIN they know lets no one in; the members read the new one
        wherever the dial-in is shown (join ack, `GET .../pin`)."""
        for _ in range(ISSUE_ATTEMPTS):
            try:
                async with self._db.begin() as conn:
                    pin = await self._unused_pin(conn)
                    result = await conn.execute(
                        update(phone_room_pins)
                        .where(phone_room_pins.c.room == room)
                        .values(pin=pin, created_at=time.time())
                    )
                return pin if result.rowcount else None
            except IntegrityError:
                continue
        raise Conflict("could not issue a unique PIN; use more PIN digits", code="pin_space_full")

    async def participant_pin(self, room: str, identity: str, name: str, role: str) -> str:
        """The participant's personal PIN for `room` (kept if issued before; the name
        and role are brought up to date)."""
        where = (phone_participant_pins.c.room == room) & (
            phone_participant_pins.c.identity == identity
        )
        for _ in range(ISSUE_ATTEMPTS):
            try:
                async with self._db.begin() as conn:
                    existing = (
                        await conn.execute(
                            select(
                                phone_participant_pins.c.pin, phone_participant_pins.c.created_at
                            ).where(where)
                        )
                    ).first()
                    if existing is not None and not await _removed_since(
                        conn, room, identity, existing.created_at
                    ):
                        await conn.execute(
                            update(phone_participant_pins).where(where).values(name=name, role=role)
                        )
                        return str(existing.pin)
                    if existing is not None:
                        # Removed since it was issued: that PIN stays refused, a new one
                        # lets them back in (as a new join token does in the browser).
                        await conn.execute(delete(phone_participant_pins).where(where))
                    pin = await self._unused_pin(conn)
                    await conn.execute(
                        insert(phone_participant_pins).values(
                            pin=pin,
                            room=room,
                            identity=identity,
                            name=name,
                            role=role,
                            created_at=time.time(),
                        )
                    )
                return pin
            except IntegrityError:
                continue
        raise Conflict("could not issue a unique PIN; use more PIN digits", code="pin_space_full")

    async def resolve(self, pin: str) -> PinMatch | None:
        if not pin.isdigit():
            return None
        async with self._db.connect() as conn:
            person = (
                await conn.execute(
                    select(phone_participant_pins).where(phone_participant_pins.c.pin == pin)
                )
            ).first()
            if person is not None:
                removed = await _removed_since(
                    conn, person.room, person.identity, person.created_at
                )
                return PinMatch(person.room, person.identity, person.name, person.role, removed)
            room = await conn.scalar(
                select(phone_room_pins.c.room).where(phone_room_pins.c.pin == pin)
            )
        return PinMatch(str(room)) if room is not None else None

    async def _unused_pin(self, conn: AsyncConnection) -> str:
        for _ in range(ISSUE_ATTEMPTS):
            pin = "".join(secrets.choice("0123456789") for _ in range(self.digits))
            taken = await conn.scalar(
                select(phone_room_pins.c.pin)
                .where(phone_room_pins.c.pin == pin)
                .union_all(
                    select(phone_participant_pins.c.pin).where(phone_participant_pins.c.pin == pin)
                )
                .limit(1)
            )
            if taken is None:
                return pin
        raise Conflict("could not issue a unique PIN; use more PIN digits", code="pin_space_full")


async def _removed_since(conn: AsyncConnection, room: str, identity: str, issued_at: float) -> bool:
    """Whether an operator removed `identity` from `room` after `issued_at` (the rule
    `RemovalStore.refuses` applies to join tokens)."""
    removed_at = await conn.scalar(
        select(removals.c.removed_at).where(
            and_(removals.c.room == room, removals.c.identity == identity)
        )
    )
    return removed_at is not None and issued_at <= removed_at
