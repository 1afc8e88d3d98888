"""Who is speaking: the active speaker of a room, from the audio levels publishers send.

Browsers (and aiortc, when it encodes) put the level of each audio packet in the RTP
header extension `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464): 0 is
0 dBov, the loudest, 127 is -127 dBov, silence. Reading it costs one byte per packet;
decoding Opus to measure its energy would cost a decoder per publisher (~0.03 core,
webrtc.md), so the SFU uses only the extension: a publisher whose packets carry none is
never the active speaker.

The detector is a pure function of (state, observation, now), as LiveKit's and Jitsi's
are: each publisher's loudness is smoothed over `HALF_LIFE_SECONDS`, the loudest one
above `SILENCE_DBOV` becomes the candidate, and the candidate becomes the active speaker
once it has stayed the loudest for `HOLD_SECONDS`, so a cough or a word of agreement
does not move the highlight. When everyone falls silent the last speaker stays; one who
mutes or leaves is the speaker no longer.

The smoothing averages amplitude (10^(dBov/20)), not decibels. Speech is loud syllables
with silent gaps, and a browser marks a silent packet 127 (-127 dBov): averaged in
decibels, one such packet weighs as much as a shout, so a talker with pauses sat at
-60..-90 "dBov" and was never the speaker for long (measured with Chromium's fake
microphone, a beep each second: its smoothed level was below `SILENCE_DBOV` nearly all
the time, and a room of three never named one). In amplitude a gap of 0.3 s costs 6 dB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HALF_LIFE_SECONDS = 0.3  # smoothing of each publisher's level
HOLD_SECONDS = 0.6  # the loudest must stay the loudest this long to become the speaker
SILENCE_DBOV = -50.0  # smoothed levels below this are not speech
STALE_SECONDS = 1.0  # a publisher with no packet for this long is not speaking
EVALUATE_SECONDS = 0.1  # how often observations are turned into a decision


@dataclass
class _Level:
    amplitude: float  # 10^(dBov/20), smoothed
    at: float  # when the last packet came

    @property
    def loudness(self) -> float:
        """The smoothed level in dBov."""
        return 20.0 * math.log10(max(self.amplitude, _SILENT))


_SILENT = 10.0 ** (-127 / 20)


@dataclass
class SpeakerDetector:
    """One room's active speaker."""

    hold: float = HOLD_SECONDS
    active: str | None = None
    candidate: str | None = None
    candidate_since: float = 0.0
    evaluated_at: float | None = None
    levels: dict[str, _Level] = field(default_factory=dict)

    def observe(self, identity: str, level: int, now: float) -> str | None:
        """One audio packet's RFC 6464 level (0..127, -dBov) from `identity` at `now`.
        Returns the new active speaker when it changes, else None."""
        amplitude = 10.0 ** (-float(level & 0x7F) / 20)
        current = self.levels.get(identity)
        if current is None:
            self.levels[identity] = _Level(amplitude, now)
        else:
            weight = 1.0 - 0.5 ** (max(0.0, now - current.at) / HALF_LIFE_SECONDS)
            current.amplitude += weight * (amplitude - current.amplitude)
            current.at = now
        if self.evaluated_at is not None and now - self.evaluated_at < EVALUATE_SECONDS:
            return None
        self.evaluated_at = now
        return self.evaluate(now)

    def forget(self, identity: str) -> bool:
        """The publisher left or was muted. Returns whether they were the active speaker:
        then nobody is until someone speaks (a muted person's highlight would say they
        are talking)."""
        self.levels.pop(identity, None)
        if self.candidate == identity:
            self.candidate = None
        if self.active != identity:
            return False
        self.active = None
        return True

    def evaluate(self, now: float) -> str | None:
        """The new active speaker if it changes at `now`, else None."""
        speaking = {
            who: level.loudness
            for who, level in self.levels.items()
            if now - level.at <= STALE_SECONDS and level.loudness >= SILENCE_DBOV
        }
        if not speaking:
            self.candidate = None
            return None
        loudest = max(speaking, key=lambda who: speaking[who])
        if loudest == self.active:
            self.candidate = None
            return None
        if loudest != self.candidate:
            self.candidate, self.candidate_since = loudest, now
        if self.active is None or now - self.candidate_since >= self.hold:
            self.active, self.candidate = loudest, None
            return loudest
        return None
