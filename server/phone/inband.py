"""In-band DTMF: key presses heard as tones in the caller's audio.

Some trunks and old PBXs pass key presses only as the tones themselves (no RFC 4733
events, no SIP INFO). The gateway listens for them only while it waits for a PIN, and
only on calls whose offer had no `telephone-event` (a caller that can send events
sends them, and their tones would count twice).

Each 25.6 ms block (205 samples at 8 kHz, the classic Goertzel size) is measured at the
eight DTMF frequencies. A key is two tones, one row and one column: both strong, together
most of the block's energy, neither much louder than the other (twist), and no second
row or column close behind. Speech rarely does all that for several blocks running; a
press counts once, when it has held for `HOLD_BLOCKS` blocks.

Blocks overlap: one starts every 5.1 ms (41 samples). Q.24 says a 40 ms tone must
count and one of 23 ms or less must not. Back-to-back blocks, two in a row, missed
tones shorter than ~70 ms depending on where the tone fell. Four overlapping blocks in
a row (measured over every offset of the tone against the blocks) accept every 40 ms
tone with 40 ms pauses and refuse every tone of 25 ms or less; 30 ms, between the two
limits, is sometimes heard.
"""

from __future__ import annotations

import numpy as np

from server.phone.g711 import Samples

RATE = 8000
BLOCK = 205
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
MIN_RMS = 200.0  # quieter is line noise (-44 dBFS)
MIN_SHARE = 0.75  # of the block's energy in the two tones
MAX_TWIST = 6.3  # 8 dB between the two tones' powers
MIN_LEAD = 6.0  # each tone at least this much stronger than the next in its group
HOLD_BLOCKS = 4  # overlapping blocks in a row (HOP apart) that must hear the key
HOP = 41  # samples between block starts (5.1 ms)

_n = np.arange(BLOCK)
# One row per frequency: correlating a block with cos and sin gives the Goertzel power.
_PROBES = np.array([np.exp(-2j * np.pi * f * _n / RATE) for f in ROWS + COLUMNS])


def key_in(block: np.ndarray) -> str | None:
    """The key one block of samples holds, if any."""
    energy = float(np.dot(block, block))
    if energy < MIN_RMS**2 * BLOCK:
        return None
    # A sinusoid's share of the block's energy: |X|^2 / (N/2 * E) is ~1 for a pure tone.
    shares = np.abs(_PROBES @ block) ** 2 / (BLOCK / 2 * energy)
    rows, columns = shares[:4], shares[4:]
    r, c = int(np.argmax(rows)), int(np.argmax(columns))
    row, column = rows[r], columns[c]
    if row + column < MIN_SHARE or max(row / column, column / row) > MAX_TWIST:
        return None
    if (
        row < MIN_LEAD * np.partition(rows, -2)[-2]
        or column < MIN_LEAD * np.partition(columns, -2)[-2]
    ):
        return None
    return KEYS[r][c]


class InbandDtmf:
    """Turns a call's audio into key presses, one per press."""

    def __init__(self) -> None:
        self._pending = np.zeros(0)
        self._candidate: str | None = None
        self._held = 0

    def feed(self, samples: Samples) -> str:
        """The keys these samples complete: usually '' or one key."""
        buffer = np.concatenate([self._pending, samples.astype(np.float64)])
        keys = ""
        start = 0
        while start + BLOCK <= len(buffer):
            key = key_in(buffer[start : start + BLOCK])
            if key is not None and key == self._candidate:
                self._held += 1
                if self._held == HOLD_BLOCKS:
                    keys += key
            else:
                self._candidate, self._held = key, 1
            start += HOP
        self._pending = buffer[start:]
        return keys
