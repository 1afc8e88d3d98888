"""The PIN prompt: what the caller hears, and the digits they key in.

Each prompt is spoken by default: a recorded voice (`voice/*.wav`, 8 kHz mono, made
from each prompt's text by `python -m server.phone.recordings`, which needs
Debian's `flite`), then a pause. `PAIRWISE_SIP_PROMPTS=tones` plays tones instead, for programs
whose callers do not speak English: two short beeps ask for the PIN (repeated), three
falling tones say "wrong, try again", three rising ones "you are in", a long low one
"goodbye". The caller keys the PIN and then `#`; `*` starts over.
"""

from __future__ import annotations

import functools
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.phone.g711 import Samples

RATE = 8000
LEVEL = 0.25 * 32767  # well below full scale: tones are loud on a handset
VOICE = Path(__file__).parent / "voice"

Tone = tuple[float, int]  # (frequency Hz, 0 for silence; milliseconds)


@dataclass(frozen=True)
class Prompt:
    name: str  # its recording: voice/{name}.wav
    text: str  # what the recording says
    tones: Sequence[Tone]  # the same meaning without words
    pause_ms: int = 0  # silence after the words (a looping prompt waits for keys)


ASK_PIN = Prompt(
    "ask_pin",
    "Please enter your meeting PIN, followed by the pound key.",
    ((660.0, 150), (0.0, 100), (660.0, 150), (0.0, 3600)),
    pause_ms=4000,
)
WRONG_PIN = Prompt(
    "wrong_pin",
    "That PIN was not recognized.",
    ((620.0, 200), (0.0, 50), (520.0, 200), (0.0, 50), (420.0, 300), (0.0, 500)),
    pause_ms=300,
)
ACCEPTED = Prompt(
    "accepted",
    "You are joining the meeting.",
    ((440.0, 120), (0.0, 30), (550.0, 120), (0.0, 30), (660.0, 200), (0.0, 200)),
    pause_ms=200,
)
GOODBYE = Prompt(
    "goodbye",
    "Sorry, we could not connect your call. Goodbye.",
    ((350.0, 800), (0.0, 300)),
    pause_ms=300,
)
ROOM_CLOSED = Prompt(
    "room_closed",
    "This meeting room is closed. Goodbye.",
    ((350.0, 300), (0.0, 100), (350.0, 300), (0.0, 100), (350.0, 800), (0.0, 300)),
    pause_ms=300,
)
MUTED = Prompt("muted", "You are muted.", ((420.0, 150), (0.0, 50), (420.0, 150)), pause_ms=100)
UNMUTED = Prompt("unmuted", "You are unmuted.", ((660.0, 150), (0.0, 50), (660.0, 150)))
# Who is in the room when a caller joins: spoken counts, or one short beep per person.
ALONE = Prompt("alone", "You are the first one here.", ((523.0, 400), (0.0, 300)))
OTHERS = tuple(
    Prompt(
        f"others_{count}",
        "One other person is here."
        if count == 1
        else f"{('Two', 'Three', 'Four', 'Five')[count - 2]} other people are here.",
        tuple(t for _ in range(count) for t in ((880.0, 80), (0.0, 170))) + ((0.0, 300),),
    )
    for count in range(1, 6)
)
MANY = Prompt(
    "others_many",
    "More than five other people are here.",
    tuple(t for _ in range(6) for t in ((880.0, 80), (0.0, 170))) + ((0.0, 300),),
)
PROMPTS = (
    ASK_PIN, WRONG_PIN, ACCEPTED, GOODBYE, ROOM_CLOSED, MUTED, UNMUTED, ALONE, *OTHERS, MANY
)  # fmt: skip


def who_is_here(others: int) -> Prompt:
    """What a caller hears on joining: how many others are in the room."""
    if others <= 0:
        return ALONE
    return OTHERS[others - 1] if others <= len(OTHERS) else MANY


@functools.cache
def render(prompt: Prompt, voice: bool = True) -> Samples:
    """What the caller hears, as 8 kHz samples: the recorded words then the pause, or
    the tones (made once per prompt; callers only read it)."""
    if not voice:
        return tones(prompt.tones)
    return np.concatenate(
        [recording(prompt.name), np.zeros(RATE * prompt.pause_ms // 1000)]
    ).astype(np.int16)


def recording(name: str) -> Samples:
    """A prompt's recorded words, from voice/{name}.wav."""
    with wave.open(str(VOICE / f"{name}.wav"), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"voice/{name}.wav is not 8 kHz mono 16-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def tones(sequence: Sequence[Tone]) -> Samples:
    """A tone sequence as 8 kHz samples, with 5 ms ramps so no tone clicks."""
    parts = []
    ramp = RATE // 200
    for frequency, ms in sequence:
        count = RATE * ms // 1000
        if frequency <= 0:
            parts.append(np.zeros(count))
            continue
        wave_ = LEVEL * np.sin(2 * np.pi * frequency * np.arange(count) / RATE)
        envelope = np.ones(count)
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[-ramp:] = np.linspace(1, 0, ramp)
        parts.append(wave_ * envelope)
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
    def samples(self) -> Samples:
        """What is playing (or last played)."""
        return self._samples

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

    def count_attempt(self) -> None:
        """A PIN that came another way (Request-URI, X-Room-Pin) uses a try too."""
        self.attempts += 1

    def exhaust(self) -> None:
        """No tries left, whatever the count (the caller's address is locked out)."""
        self.tries = min(self.tries, self.attempts)

    def timed_out(self) -> None:
        """The caller keyed nothing useful for too long: that counts as a try."""
        self._digits = ""
        self.attempts += 1

    @property
    def exhausted(self) -> bool:
        return self.attempts >= self.tries
