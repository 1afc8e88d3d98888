"""The PIN prompt: what the caller hears, and the digits they key in.

Tones rather than speech, so nothing is lost in translation and no voice files need
shipping: two short beeps ask for the PIN (repeated), three falling tones say
"wrong, try again", three rising ones "you are in", a long low one "goodbye".
The caller keys the PIN and then `#`; `*` starts over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.media.phone.g711 import Samples

RATE = 8000
LEVEL = 0.25 * 32767  # well below full scale: tones are loud on a handset

Tone = tuple[float, int]  # (frequency Hz, 0 for silence; milliseconds)

ASK_PIN: Sequence[Tone] = ((660.0, 150), (0.0, 100), (660.0, 150), (0.0, 3600))
WRONG_PIN: Sequence[Tone] = (
    (620.0, 200),
    (0.0, 50),
    (520.0, 200),
    (0.0, 50),
    (420.0, 300),
    (0.0, 500),
)
ACCEPTED: Sequence[Tone] = (
    (440.0, 120),
    (0.0, 30),
    (550.0, 120),
    (0.0, 30),
    (660.0, 200),
    (0.0, 200),
)
GOODBYE: Sequence[Tone] = ((350.0, 800), (0.0, 300))


def render(tones: Sequence[Tone]) -> Samples:
    """A tone sequence as 8 kHz samples, with 5 ms ramps so no tone clicks."""
    parts = []
    ramp = RATE // 200
    for frequency, ms in tones:
        count = RATE * ms // 1000
        if frequency <= 0:
            parts.append(np.zeros(count))
            continue
        wave = LEVEL * np.sin(2 * np.pi * frequency * np.arange(count) / RATE)
        envelope = np.ones(count)
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[-ramp:] = np.linspace(1, 0, ramp)
        parts.append(wave * envelope)
    return np.concatenate(parts).astype(np.int16)


class PromptPlayer:
    """Plays one rendered prompt (optionally looping) in caller-sized chunks."""

    def __init__(self) -> None:
        self._samples: Samples = np.zeros(0, dtype=np.int16)
        self._position = 0
        self._loop = False

    def play(self, samples: Samples, loop: bool = False) -> None:
        self._samples, self._position, self._loop = samples, 0, loop

    @property
    def finished(self) -> bool:
        return not self._loop and self._position >= len(self._samples)

    def read(self, count: int) -> Samples:
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and len(self._samples):
            if self._position >= len(self._samples):
                if not self._loop:
                    break
                self._position = 0
            take = min(count - filled, len(self._samples) - self._position)
            out[filled : filled + take] = self._samples[self._position : self._position + take]
            filled += take
            self._position += take
        return out


@dataclass
class PinEntry:
    """Collects keyed digits into PIN attempts: digits then `#`; `*` clears."""

    max_digits: int = 16
    tries: int = 3
    attempts: int = 0
    _digits: str = ""

    def key(self, digit: str) -> str | None:
        """Feed one DTMF digit; the attempted PIN when `#` completes one."""
        if digit == "*":
            self._digits = ""
            return None
        if digit == "#":
            pin, self._digits = self._digits, ""
            if not pin:
                return None  # a stray `#` is not an attempt
            self.attempts += 1
            return pin
        if digit.isdigit() and len(self._digits) < self.max_digits:
            self._digits += digit
        return None

    def timed_out(self) -> None:
        """The caller keyed nothing useful for too long: that counts as a try."""
        self._digits = ""
        self.attempts += 1

    @property
    def exhausted(self) -> bool:
        return self.attempts >= self.tries
