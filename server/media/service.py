"""The SFU as the rest of the server sees it, wherever it runs.

`MediaService` is what signaling, the stats API, the phone gateway and the cluster use.
`LocalMedia` carries it on an `Sfu` in this process (`media_workers` = 0, the test
apps); `WorkerPool` (workers/pool.py) on SFUs in worker processes, one room per worker.
The phone gateway's seam (`RoomAudio`) is
built on either by the phone package (phone depends on media, never the reverse).
Pre-join connection checks (`probes`) stay in the main process either way: they
belong to no room and forward nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.media.probe import MediaProbes
from server.media.room_stats import room_media
from server.media.sfu import Notify, Sfu


@dataclass
class Connected:
    """The SFU's answer to a client's offer, and the sections it refused in it."""

    sdp: str
    refused: list[dict[str, str]] = field(default_factory=list)


class MediaService(Protocol):
    probes: MediaProbes

    def set_notify(self, notify: Notify) -> None:
        """Where the SFU's messages to one participant go (signaling)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def connect(
        self,
        room: str,
        identity: str,
        offer_sdp: str,
        may_publish: bool = True,
        reconnect_reason: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> Connected: ...

    async def answer(self, room: str, identity: str, answer_sdp: str, revision: int) -> None: ...

    async def control(
        self,
        room: str,
        identity: str,
        audio: bool | None = None,
        video: bool | None = None,
        receive_video: bool | None = None,
        screen: bool | None = None,
    ) -> dict[str, bool]:
        """The participant's controls after the change (`Controls.public()`)."""

    async def view(
        self, room: str, identity: str, views: Sequence[tuple[str, str, int, int]]
    ) -> int: ...

    async def disconnect(self, room: str, identity: str) -> bool: ...

    async def room_stats(
        self, room: str, identities: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        """`room_stats.room_media` of the room, None when it has no media here."""

    def forwarded_streams(self) -> int:
        """Tracks forwarded to a subscriber on this node (the cluster weighs load by it)."""

    def health(self) -> dict[str, Any] | None:
        """What /healthz says of the media: None while all is well."""


class LocalMedia:
    """`MediaService` on an `Sfu` in this process."""

    def __init__(self, sfu: Sfu) -> None:
        self.sfu = sfu
        self.probes = sfu.probes

    def set_notify(self, notify: Notify) -> None:
        self.sfu.notify = notify

    async def start(self) -> None:
        await self.sfu.start()

    async def stop(self) -> None:
        await self.sfu.stop()

    async def connect(
        self,
        room: str,
        identity: str,
        offer_sdp: str,
        may_publish: bool = True,
        reconnect_reason: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> Connected:
        sdp = await self.sfu.connect(
            room, identity, offer_sdp, may_publish, reconnect_reason, sources
        )
        return Connected(sdp, refused(self.sfu, room, identity))

    async def answer(self, room: str, identity: str, answer_sdp: str, revision: int) -> None:
        await self.sfu.answer(room, identity, answer_sdp, revision)

    async def control(
        self,
        room: str,
        identity: str,
        audio: bool | None = None,
        video: bool | None = None,
        receive_video: bool | None = None,
        screen: bool | None = None,
    ) -> dict[str, bool]:
        return self.sfu.control(room, identity, audio, video, receive_video, screen).public()

    async def view(
        self, room: str, identity: str, views: Sequence[tuple[str, str, int, int]]
    ) -> int:
        return self.sfu.view(room, identity, views)

    async def disconnect(self, room: str, identity: str) -> bool:
        return await self.sfu.disconnect(room, identity)

    async def room_stats(
        self, room: str, identities: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        return room_media(self.sfu.rooms.get(room), identities)

    def forwarded_streams(self) -> int:
        return self.sfu.forwarded_streams()

    def health(self) -> dict[str, Any] | None:
        return None  # in this process: if it answers, its SFU is there


def refused(sfu: Sfu, room: str, identity: str) -> list[dict[str, str]]:
    """The sections refused in the participant's current connection's offer."""
    peer = sfu.peer(room, identity)
    return [r.public() for r in peer.refusals.sections] if peer is not None else []
