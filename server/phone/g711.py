"""G.711 µ-law (PCMU) and A-law (PCMA) through numpy lookup tables.

`audioop` is gone in Python 3.13. Tables are built once at import (vectorised, a
few milliseconds): decode is a 256-entry table, encode a 65 536-entry one indexed
by the sample's 16-bit pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int16]

_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> Samples:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude >> 7 | 1)).astype(np.int32)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return _by_bit_pattern(encoded)


def _alaw_decode_table() -> Samples:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(x >= 0, 0xD5, 0x55)
    value = np.where(x >= 0, x, -x - 1)
    segment = np.searchsorted(_SEGMENT_ENDS, value)
    low = np.where(segment < 2, value >> 1, value >> np.maximum(segment, 1)) & 0x0F
    encoded = np.where(segment >= 8, 0x7F, (segment << 4) | low) ^ mask
    return _by_bit_pattern(encoded)


def _by_bit_pattern(encoded_from_min: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Reorder a table indexed from -32768 so that index = the sample's uint16 view."""
    return np.roll(encoded_from_min.astype(np.uint8), -32768)


DECODE = {"PCMU": _ulaw_decode_table(), "PCMA": _alaw_decode_table()}
ENCODE = {"PCMU": _ulaw_encode_table(), "PCMA": _alaw_encode_table()}
SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}


def decode(codec: str, payload: bytes) -> Samples:
    """G.711 bytes → int16 samples (one per byte)."""
    return DECODE[codec][np.frombuffer(payload, dtype=np.uint8)]


def encode(codec: str, samples: Samples) -> bytes:
    """int16 samples → G.711 bytes."""
    return ENCODE[codec][samples.astype(np.int16, copy=False).view(np.uint16)].tobytes()
