"""A real server with the SFU, and a factory for participants with real PeerConnections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from server.config import Settings
from tests.media.support import Encoded, MediaClient, encode_audio, encode_video
from tests.support.participants import SocketParticipant, issue_token

Join = Callable[..., Awaitable[MediaClient]]

# Thresholds small enough for tests, generous enough for a loaded 2-core machine.
MEDIA_SETTINGS: dict[str, Any] = {
    "media_silence_seconds": 1.5,
    "media_recover_seconds": 1.0,
    "media_ice_timeout_seconds": 4.0,
}


@pytest.fixture(scope="session")
def video_frames() -> list[Encoded]:
    return encode_video(90)


@pytest.fixture(scope="session")
def audio_frames() -> list[Encoded]:
    return encode_audio(100)


@pytest.fixture
def media_settings() -> dict[str, Any]:
    return dict(MEDIA_SETTINGS)


@pytest.fixture
async def server(
    aiohttp_server: Any, make_settings: Callable[..., Settings], media_settings: dict[str, Any]
) -> Any:
    from server.app import create_app

    return await aiohttp_server(create_app(make_settings(**media_settings)))


@pytest.fixture
def base_url(server: Any) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def join(
    base_url: str, video_frames: list[Encoded], audio_frames: list[Encoded]
) -> AsyncIterator[Join]:
    """Join a room and connect media: publishing audio+video unless told otherwise."""
    made: list[MediaClient] = []

    async def make(
        identity: str,
        room: str = "pair-1",
        role: str = "mentee",
        publish: bool = True,
        decode: bool = True,
        connect: bool = True,
        media_mode: str = "video",
        video: list[Encoded] | None = None,
        **client: Any,
    ) -> MediaClient:
        token = await asyncio.to_thread(issue_token, base_url, room, identity, None, role)
        socket = await SocketParticipant(base_url, token).connect()
        socket.joined = await socket.join(media_mode=media_mode)  # type: ignore[attr-defined]
        person = MediaClient(socket, decode=decode, **client)
        made.append(person)
        if publish:
            person.publish(video_frames if video is None else video, audio_frames)
        else:
            person.receive_only()
        if connect:
            await person.connect()
        return person

    yield make
    for person in made:
        await person.close()
