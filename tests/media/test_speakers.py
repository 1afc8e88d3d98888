"""The active speaker (server/media/speakers.py): levels from the RFC 6464 header
extension, kept on forwarded packets, and a debounced `active_speaker` event."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from prometheus_client import CollectorRegistry

from server.media import aiortc_internals
from server.media._rtp_receive import QUIET_S
from server.media.forwarding import Publication
from server.media.metrics import MediaMetrics
from server.media.speakers import HOLD_SECONDS, SpeakerDetector
from tests.media.conftest import Join
from tests.media.support import AUDIO_RATE, MediaClient, Received
from tests.media.test_send_path import OPUS
from tests.support.waiting import eventually

LOUD, QUIET = 6, 40  # RFC 6464 levels: -6 dBov and -40 dBov


def feed(detector: SpeakerDetector, levels: dict[str, int], start: float, seconds: float) -> list:
    """Packets every 20 ms from each publisher; returns the speaker changes (time, who)."""
    changes = []
    for step in range(int(seconds / 0.02)):
        now = start + step * 0.02
        for who, level in levels.items():
            speaker = detector.observe(who, level, now)
            if speaker is not None:
                changes.append((now, speaker))
    return changes


def test_the_louder_publisher_is_the_speaker() -> None:
    detector = SpeakerDetector()
    changes = feed(detector, {"ada": QUIET, "bo": LOUD}, start=0.0, seconds=2.0)
    assert changes[-1][1] == "bo"
    assert detector.active == "bo"


def test_a_short_burst_does_not_move_the_speaker() -> None:
    detector = SpeakerDetector()
    feed(detector, {"ada": LOUD, "bo": QUIET}, start=0.0, seconds=2.0)
    # Bo is louder for a third of a second (a cough), then ada again.
    changes = feed(detector, {"ada": QUIET, "bo": LOUD}, start=2.0, seconds=0.3)
    changes += feed(detector, {"ada": LOUD, "bo": QUIET}, start=2.3, seconds=2.0)
    assert changes == []
    assert detector.active == "ada"


def test_the_speaker_follows_a_swap_after_the_hold() -> None:
    detector = SpeakerDetector()
    feed(detector, {"ada": LOUD, "bo": QUIET}, start=0.0, seconds=2.0)
    changes = feed(detector, {"ada": QUIET, "bo": LOUD}, start=2.0, seconds=2.0)
    assert [who for _, who in changes] == ["bo"]
    assert changes[0][0] - 2.0 >= HOLD_SECONDS


def test_silence_keeps_the_last_speaker_and_a_muted_one_is_forgotten() -> None:
    detector = SpeakerDetector()
    feed(detector, {"ada": LOUD, "bo": 127}, start=0.0, seconds=1.0)
    assert feed(detector, {"ada": 127, "bo": 127}, start=1.0, seconds=2.0) == []
    assert detector.active == "ada"
    assert detector.forget("bo") is False  # not the speaker: ada stays
    assert detector.active == "ada"
    assert detector.forget("ada") is True  # the speaker muted: nobody is
    assert detector.active is None
    assert feed(detector, {"bo": QUIET}, start=3.0, seconds=2.0)[-1][1] == "bo"


def test_a_talker_with_pauses_is_the_speaker() -> None:
    """Syllables with silent gaps (127, as a browser marks silence), as Chromium's fake
    microphone beeps: averaged in decibels the gaps sank the talker below silence."""
    detector = SpeakerDetector()
    feed(detector, {"ada": LOUD}, start=0.0, seconds=1.0)
    # Ada falls silent; Bo talks: 0.2 s of words, 0.3 s of pause.
    changes = []
    for burst in range(6):
        start = 1.0 + burst * 0.5
        changes += feed(detector, {"ada": 127, "bo": 10}, start=start, seconds=0.2)
        changes += feed(detector, {"ada": 127, "bo": 127}, start=start + 0.2, seconds=0.3)
    assert [who for _, who in changes] == ["bo"], changes
    assert changes[0][0] - 1.0 >= HOLD_SECONDS


def timeline(talk: list[tuple[dict[str, int], float]]) -> list[tuple[float, dict[str, int]]]:
    """Each publisher's level every 20 ms, from (levels, seconds) spans."""
    packets, start = [], 0.0
    for levels, seconds in talk:
        packets += [(start + step * 0.02, levels) for step in range(round(seconds / 0.02))]
        start += seconds
    return packets


@pytest.mark.parametrize(
    "talk",
    [
        [({"ada": LOUD, "bo": QUIET}, 2.0), ({"ada": QUIET, "bo": LOUD}, 3.0)],
        # Bo talks with pauses (0.2 s of words, 0.3 s of silence) once ada stops.
        [({"ada": LOUD, "bo": 127}, 2.0)]
        + [({"ada": 127, "bo": 10 if n % 5 < 2 else 127}, 0.1) for n in range(30)],
    ],
    ids=["swap", "pauses"],
)
def test_levels_handed_on_in_batches_move_the_speaker_as_packet_by_packet(
    talk: list[tuple[dict[str, int], float]],
) -> None:
    """While the SFU forwards a publisher's audio from C, Python sees a packet each
    `QUIET_S` with the (arrival time, level) of those kept back since (`Publication.push`'s
    `held_levels`, as `LayerBuffer.held_levels` gives them). Heard at their own times, they
    move the speaker as packets heard one by one do, announced at most `QUIET_S` later
    (when the batch comes)."""
    one_by_one, by_batch = SpeakerDetector(), SpeakerDetector()
    metrics = MediaMetrics(CollectorRegistry())
    now = 0.0
    publications = {
        who: Publication("room", who, "audio", metrics, clock=lambda: now) for who in ("ada", "bo")
    }
    changes: dict[str, list[tuple[float, str]]] = {"one by one": [], "by batch": []}
    for who, publication in publications.items():
        publication.sinks.append(lambda codec, packet: None)  # someone takes it

        def heard(level: int, at: float, who: str = who) -> None:
            speaker = by_batch.observe(who, level, at)
            if speaker is not None:
                changes["by batch"].append((now, speaker))

        publication.on_audio_level = heard
    held: dict[str, list[tuple[float, int]]] = {"ada": [], "bo": []}
    every = round(QUIET_S / 0.02)
    for step, (now, levels) in enumerate(timeline(talk)):
        for who, level in levels.items():
            speaker = one_by_one.observe(who, level, now)
            if speaker is not None:
                changes["one by one"].append((now, speaker))
            if step % every:
                held[who].append((now, level))
            else:
                publications[who].push(OPUS, b"\x01", step * 960, level, held_levels=held[who])
                held[who] = []
    assert [who for _, who in changes["by batch"]] == [who for _, who in changes["one by one"]]
    assert len(changes["by batch"]) == 2
    for (heard_at, _), (said_at, _) in zip(changes["one by one"], changes["by batch"], strict=True):
        assert heard_at <= said_at <= heard_at + QUIET_S, changes


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone of `amplitude`, in 20 ms frames: aiortc encodes it and writes each
    packet's level (RFC 6464), as a browser does."""

    kind = "audio"

    def __init__(self, amplitude: int) -> None:
        super().__init__()
        self.amplitude = amplitude
        self._count = 0
        self._started: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        await asyncio.sleep(max(0.0, self._started + self._count * 0.02 - time.monotonic()))
        t = (np.arange(960) + self._count * 960) / AUDIO_RATE
        samples = (np.sin(2 * np.pi * 440 * t) * self.amplitude).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._count * 960
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


async def speaker(join: Join, identity: str, amplitude: int) -> tuple[MediaClient, ToneTrack]:
    person = await join(identity, publish=False, connect=False)
    tone = ToneTrack(amplitude)
    person.pc.addTransceiver(tone, direction="sendonly")
    await person.connect()
    return person, tone


def speakers(person: MediaClient) -> list[str]:
    return [event["identity"] for event in person.socket.events["active_speaker"]]


@pytest.mark.slow
async def test_the_speaker_event_names_the_louder_and_follows_a_swap(join: Join) -> None:
    eve = await join("eve", publish=False, decode=False)
    levels: list[int | None] = []

    def level_of(received: Received, receiver: RTCRtpReceiver, frame: Any) -> None:
        if received.kind == "audio":
            levels.append(aiortc_internals.audio_level(frame))

    eve.on_frame = level_of
    ada_client, ada = await speaker(join, "ada", amplitude=20000)
    bo_client, bo = await speaker(join, "bo", amplitude=400)
    await eventually(lambda: speakers(eve)[-1:] == ["ada"], timeout=20)
    # The forwarded packets still carry the publishers' levels.
    await eventually(lambda: len(levels) > 50, timeout=20)
    assert all(level is not None for level in levels[-20:]), levels[-20:]
    assert min(level & 0x7F for level in levels if level is not None) < 20

    ada.amplitude, bo.amplitude = 400, 20000
    await eventually(lambda: speakers(eve)[-1:] == ["bo"], timeout=20)
    ada.amplitude, bo.amplitude = 20000, 400
    await eventually(lambda: speakers(eve)[-1:] == ["ada"], timeout=20)

    # Bo mutes: nothing changes. Ada, the speaker, mutes: nobody is; she unmutes and is
    # the speaker again.
    await bo_client.socket.call("media_control", {"audio": False})
    await ada_client.socket.call("media_control", {"audio": False})
    await eventually(lambda: speakers(eve)[-2:] == ["ada", None], timeout=20)
    await ada_client.socket.call("media_control", {"audio": True})
    await eventually(lambda: speakers(eve)[-1:] == ["ada"], timeout=20)
