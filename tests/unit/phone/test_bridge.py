import fractions

import av
import numpy as np

from server.phone.bridge import PHONE_RATE, PhoneTrack, RoomMix
from server.phone.prompt import PinEntry


def frame_48k(frequency: float, level: float, start: int) -> av.AudioFrame:
    phase = np.arange(start, start + 960)
    samples = (level * np.sin(2 * np.pi * frequency * phase / 48000)).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 48000, start, fractions.Fraction(1, 48000)
    return frame


def test_two_loud_speakers_are_limited_instead_of_clipped() -> None:
    mix = RoomMix()
    for index in range(10):
        mix.push("a", frame_48k(400, 30000, index * 960))
        mix.push("b", frame_48k(400, 30000, index * 960))  # in phase: the sum would be 60000
    out = np.concatenate([mix.read(160) for _ in range(8)]).astype(np.int32)
    assert np.abs(out).max() <= 0.9 * 32767
    assert np.abs(out).max() > 0.5 * 32767  # turned down, not silenced


def test_a_source_that_runs_dry_is_silence_not_noise() -> None:
    mix = RoomMix()
    assert mix.read(240).tolist() == [0] * 240
    mix.push("a", frame_48k(400, 8000, 0))
    assert mix.read(240).tolist() == [0] * 240  # 20 ms is not enough to start (prefill)


def test_closing_a_mix_tells_its_owner_once() -> None:
    closed = []
    mix = RoomMix(on_close=lambda: closed.append(True))
    mix.close()
    mix.close()
    assert closed == [True]


async def test_phone_track_gives_20_ms_frames_at_48_khz() -> None:
    track = PhoneTrack()
    for _ in range(4):
        track.push(np.zeros(PHONE_RATE * 30 // 1000, dtype=np.int16))  # 30 ms packets
    frames = [await track.recv() for _ in range(5)]
    assert {(f.samples, f.sample_rate) for f in frames} == {(960, 48000)}
    assert [f.pts for f in frames] == [0, 960, 1920, 2880, 3840]


def test_pin_entry_needs_hash_and_counts_tries() -> None:
    entry = PinEntry(tries=3)
    assert [entry.key(d) for d in "12*34"] == [None] * 5
    assert entry.key("#") == "34"
    assert entry.key("#") is None  # an empty attempt is not a try
    entry.timed_out()
    assert not entry.exhausted
    for digit in "9#":
        entry.key(digit)
    assert entry.exhausted and entry.attempts == 3


def test_a_standing_queue_is_cut_but_jitter_is_not() -> None:
    """Room audio that piled up (a stall, the PIN prompt) must not stay as delay: a
    queue that never drains below prefill for a window is cut back; a queue that
    swings with bunched arrivals keeps its cover."""
    mix = RoomMix()
    start = 0
    for _ in range(10):  # 200 ms arrive at once
        mix.push("ada", frame_48k(440, 4000, start))
        start += 960
    # Then steady: 20 ms in per 20 ms out (two 30 ms reads per three frames).
    for _ in range(60):
        for _ in range(3):
            mix.push("ada", frame_48k(440, 4000, start))
            start += 960
        mix.read(240)
        mix.read(240)
    state = mix._sources["ada"]
    assert state.buffered <= (60 + 20 + 20) * PHONE_RATE // 1000, state.buffered  # ~prefill

    jittery = RoomMix()
    start = 0
    for _ in range(3):
        jittery.push("bo", frame_48k(440, 4000, start))
        start += 960
    for i in range(120):  # frames bunched in threes, reads steady: never cut, never dry
        if i % 3 == 0:
            for _ in range(3):
                jittery.push("bo", frame_48k(440, 4000, start))
                start += 960
        heard = jittery.read(160)
        assert np.abs(heard).max() > 1000, i
