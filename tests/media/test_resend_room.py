"""Resends fit in what a subscriber's estimate leaves after its media
(server/media/resend_room.py), on all its streams together."""

from __future__ import annotations

from server.media.resend_room import BURST_SECONDS, ResendRoom
from server.media.simulcast_choice import Estimate


def room_at(bitrate: float | None) -> tuple[ResendRoom, Estimate]:
    remb = Estimate()
    if bitrate is not None:
        remb.observe(bitrate, 0.0)
    return ResendRoom(remb), remb


def resent(room: ResendRoom, media_per_tick: int, seconds: float, size: int = 1000) -> int:
    """Bytes resent over `seconds` of 10 ms ticks, each sending `media_per_tick` bytes of
    media and then asking for as many resends of `size` bytes as the room takes."""
    total, now = 0, 0.0
    for _ in range(round(seconds / 0.01)):
        now += 0.01
        room.sent += media_per_tick
        while room.take(size, now):
            total += size
    return total


def test_before_any_estimate_nothing_is_held_back() -> None:
    room, _ = room_at(None)
    assert all(room.take(1200, t) for t in range(100))


def test_media_over_the_estimate_leaves_no_room_for_resends() -> None:
    # The cap test's link: ~430 kbit/s of media to a subscriber whose REMB says 280.
    room, _ = room_at(280_000)
    assert resent(room, media_per_tick=430_000 // 8 // 100, seconds=5) == 0


def test_resends_take_what_the_media_leaves_and_no_more() -> None:
    room, _ = room_at(300_000)
    # 100 kbit/s of media: about 200 kbit/s, 25,000 bytes a second, left for resends
    total = resent(room, media_per_tick=100_000 // 8 // 100, seconds=10)
    assert 24_000 * 10 <= total <= 25_000 * 10 + 300_000 / 8 * BURST_SECONDS
    # the estimate falls to the media's rate: the room closes
    room._remb.observe(100_000, 11.0)
    assert resent(room, media_per_tick=100_000 // 8 // 100, seconds=5) <= 1000


def test_an_idle_link_saves_at_most_a_burst() -> None:
    room, _ = room_at(400_000)
    assert not room.take(1000, 0.0)  # the first resend starts the count
    # 60 s with nothing sent: the allowance is capped at BURST_SECONDS of the estimate
    total = 0
    while room.take(1000, 60.0):
        total += 1000
    assert total == 400_000 // 8 * BURST_SECONDS // 1000 * 1000
