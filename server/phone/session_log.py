"""The phone's own entries in a pair's session log: PINs refused for a known room.

A wrong PIN names no room, so it stays in the metrics and the log line. A refused PIN
that does name one (a removed person's personal PIN) lands in the timeline of the
session in progress there, next to the room's joins and leaves, so the pair's log
shows that someone tried to come back.
"""

from __future__ import annotations

from sqlalchemy import insert

from server.phone.events import PhonePinRejected
from server.rooms.events import RoomEvent
from server.sessionlog.recorder import SessionRecorder
from server.store import Database
from server.store.schema import session_timeline

KIND = "phone_pin_rejected"


class PinRejectionLog:
    """Subscribe with `bus.subscribe(log, "phone-pin-log", kinds=PinRejectionLog.KINDS)`."""

    KINDS = (PhonePinRejected,)

    def __init__(self, database: Database, recorder: SessionRecorder) -> None:
        self._db = database
        self._recorder = recorder

    async def __call__(self, event: RoomEvent) -> None:
        if not isinstance(event, PhonePinRejected) or not event.room:
            return
        session_id = self._recorder.open_session(event.room)
        if session_id is None:
            return
        async with self._db.begin() as conn:
            await conn.execute(
                insert(session_timeline).values(
                    session_id=session_id,
                    ts=event.ts,
                    kind=KIND,
                    identity=None,
                    detail=f"{event.reason} via {event.via} from {event.source} ({event.caller})",
                )
            )
