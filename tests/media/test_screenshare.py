"""Screen share: a participant's second video track, forwarded while they share.

Real aiortc peers over loopback: the sharer publishes audio, a 160x120 camera and a
320x240 "screen"; the others must receive the screen as a third track labelled
`source: "screen"` in the SFU's `tracks`, decode it at its own size, and lose it when
sharing stops.
"""

from __future__ import annotations

import pytest

from tests.media.conftest import Join
from tests.media.support import Encoded, MediaClient, Received, encode_video
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def screen_frames() -> list[Encoded]:
    return encode_video(40, width=320, height=240, fps=10, keyint=20)


def video_by_source(person: MediaClient) -> dict[str, Received]:
    return {
        str(person.source_of(r)): r
        for r in person.of_kind("video")
        if not r.ended.is_set() and person.source_of(r) is not None
    }


async def sharer(join: Join, frames: list[Encoded], **options: object) -> MediaClient:
    ada = await join("ada", role="mentor", connect=False)
    ada.publish_screen(frames)
    await ada.connect(**options)
    return ada


async def test_a_shared_screen_reaches_everyone_labelled_and_stops(
    join: Join, screen_frames: list[Encoded]
) -> None:
    ada = await sharer(join, screen_frames)
    bo = await join("bo")
    await eventually(lambda: set(video_by_source(bo)) == {"camera"}, timeout=20)
    assert all(r.frames == 0 for r in bo.received if bo.source_of(r) == "screen")

    ack = await ada.socket.call("media_control", {"screen": True})
    assert ack["screen"] is True
    await eventually(
        lambda: (
            set(video_by_source(bo)) == {"camera", "screen"}
            and all(r.first_size is not None for r in video_by_source(bo).values())
            and video_by_source(bo)["screen"].frames > 10
        ),
        timeout=20,
    )
    videos = video_by_source(bo)
    assert videos["screen"].first_size == (320, 240)
    assert videos["camera"].first_size == (160, 120)

    carol = await join("carol")  # joins while the screen is shared
    await eventually(
        lambda: (
            set(video_by_source(carol)) == {"camera", "screen"}
            and video_by_source(carol)["screen"].frames > 5
        ),
        timeout=20,
    )

    screen = video_by_source(bo)["screen"]
    await ada.socket.call("media_control", {"screen": False})
    await eventually(screen.ended.is_set, timeout=20)
    await eventually(
        lambda: "screen" not in {info["source"] for info in bo.offers[-1]["tracks"].values()}
    )
    camera = video_by_source(bo)["camera"]
    before = camera.frames
    await eventually(lambda: camera.frames > before + 10)  # the camera goes on

    await ada.socket.call("media_control", {"screen": True})  # and again
    await eventually(
        lambda: "screen" in video_by_source(bo) and video_by_source(bo)["screen"].frames > 5,
        timeout=20,
    )


async def test_the_offer_can_name_which_video_is_the_screen(
    join: Join, screen_frames: list[Encoded], video_frames: list[Encoded]
) -> None:
    """The client names its m-lines (`sources`): here the screen comes first."""
    ada = await join("ada", role="mentor", connect=False, publish=False)
    ada.publish_screen(screen_frames)
    ada.publish(video_frames, None)
    await ada.connect(sources={"1": "screen"})  # aiortc numbers mids in order (audio is 0)
    assert ada.screen_mid() == "1"
    await ada.socket.call("media_control", {"screen": True})
    bo = await join("bo")
    await eventually(
        lambda: (
            set(video_by_source(bo)) == {"camera", "screen"}
            and all(r.frames > 5 for r in video_by_source(bo).values())
        ),
        timeout=20,
    )
    assert video_by_source(bo)["screen"].first_size == (320, 240)
    assert video_by_source(bo)["camera"].first_size == (160, 120)


async def test_sharing_needs_the_publish_grant(join: Join) -> None:
    watcher = await join("olga", role="observer", publish=False)
    ack = await watcher.socket.call("media_control", {"screen": True})
    assert ack["error"]["code"] == "forbidden"
