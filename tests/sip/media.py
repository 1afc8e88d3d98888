"""Media a test needs to play the caller's side: tones, RTP, RFC 4733 key presses."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
from aiortc.mediastreams import AudioStreamTrack

from server.phone import g711
from server.phone.dtmf import EVENTS, TelephoneEvent
from server.phone.inband import COLUMNS, KEYS, ROWS
from server.phone.rtp import RtpPacket


def tone(frequency: float, seconds: float, rate: int = 8000, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def key_tones(
    keys: str, on_ms: int = 80, off_ms: int = 80, level: float = 6000.0, twist: float = 1.0
) -> np.ndarray:
    """Keys pressed on a phone, as the tones themselves (in-band DTMF), 8 kHz."""
    parts = [np.zeros(8000 * 120 // 1000)]
    for key in keys:
        r = next(i for i, row in enumerate(KEYS) if key in row)
        c = KEYS[r].index(key)
        t = np.arange(8000 * on_ms // 1000) / 8000
        row, column = np.sin(2 * np.pi * ROWS[r] * t), np.sin(2 * np.pi * COLUMNS[c] * t)
        parts += [level * (row + twist * column), np.zeros(8000 * off_ms // 1000)]
    return np.concatenate(parts).astype(np.int16)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in `samples` (Hann window, 1 Hz bins or better)."""
    data = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    spectrum[:5] = 0  # ignore DC
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


def key_presses(
    digits: str, ssrc: int, sequence: int, timestamp: int, payload_type: int = 101
) -> list[bytes]:
    """RTP packets of RFC 4733 key presses as a phone sends them: a start packet,
    a continuation, and the end packet three times, all with the press's timestamp."""
    packets = []
    for digit in digits:
        event = EVENTS.index(digit)
        for index, (end, duration) in enumerate(
            ((False, 400), (False, 800), (True, 960), (True, 960), (True, 960))
        ):
            payload = TelephoneEvent(event, end, 10, duration).serialise()
            packets.append(
                RtpPacket(
                    payload_type, sequence, timestamp, ssrc, payload, marker=index == 0
                ).serialise()
            )
            sequence += 1
        timestamp += 1600
    return packets


def g711_packets(
    codec: str,
    samples: np.ndarray,
    payload_type: int,
    ssrc: int,
    ptime_ms: int = 30,
    sequence: int = 0,
    timestamp: int = 0,
) -> list[bytes]:
    count = 8 * ptime_ms
    return [
        RtpPacket(
            payload_type,
            sequence + index,
            timestamp + index * count,
            ssrc,
            g711.encode(codec, samples[start : start + count]),
        ).serialise()
        for index, start in enumerate(range(0, len(samples) - count + 1, count))
    ]


class ToneTrack(AudioStreamTrack):
    """An aiortc audio track playing a sine at 48 kHz, paced like a microphone."""

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self._sample = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._sample / 48000
        await asyncio.sleep(max(0.0, due - loop.time()))
        phase = np.arange(960) + self._sample
        samples = (8000 * np.sin(2 * np.pi * self.frequency * phase / 48000)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._sample
        frame.time_base = fractions.Fraction(1, 48000)
        self._sample += 960
        return frame
