"""In-band DTMF: key tones in the caller's audio, and speech that must not count."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone import g711, prompt
from server.phone.inband import RATE, InbandDtmf
from tests.sip.media import key_tones


def heard(samples: np.ndarray, chunk: int = 160) -> str:
    """What the detector reports, fed as a call would: one packet's samples at a time,
    after a trip through G.711."""
    detector = InbandDtmf()
    through_line = g711.decode("PCMU", g711.encode("PCMU", samples))
    return "".join(
        detector.feed(through_line[i : i + chunk]) for i in range(0, len(samples), chunk)
    )


def test_every_key_once_per_press() -> None:
    assert heard(key_tones("0123456789*#ABCD")) == "0123456789*#ABCD"


@pytest.mark.parametrize("chunk", [160, 240, 1000])
def test_the_same_key_twice_is_two_presses(chunk: int) -> None:
    assert heard(key_tones("4422#"), chunk) == "4422#"


def test_a_long_press_is_one_key_and_a_short_blip_none() -> None:
    assert heard(key_tones("7", on_ms=600)) == "7"
    assert heard(key_tones("7", on_ms=23)) == ""  # Q.24: 23 ms or less is no key


@pytest.mark.parametrize("lead_ms", range(0, 26, 3))  # where the tone falls in the blocks
def test_q24_tones_of_40_ms_with_40_ms_pauses_are_keys(lead_ms: int) -> None:
    samples = np.concatenate(
        [np.zeros(RATE * lead_ms // 1000), key_tones("1590#", on_ms=40, off_ms=40)]
    ).astype(np.int16)
    assert heard(samples) == "1590#"


def test_quiet_lines_and_lopsided_tones_are_not_keys() -> None:
    assert heard(key_tones("5", level=50.0)) == ""  # below the line-noise floor
    assert heard(key_tones("5", twist=0.2)) == ""  # 14 dB of twist: not a phone's key
    assert heard(key_tones("5", twist=0.6)) == "5"  # 4.4 dB: within what phones do


def test_noise_and_a_single_tone_are_not_keys() -> None:
    rng = np.random.default_rng(1)
    assert heard((rng.normal(0, 3000, RATE * 2)).astype(np.int16)) == ""
    t = np.arange(RATE) / RATE
    assert heard((8000 * np.sin(2 * np.pi * 852 * t)).astype(np.int16)) == ""


def test_speech_is_not_keys() -> None:
    # The gateway's own recorded prompts stand in for a caller talking over the PIN.
    for which in prompt.PROMPTS:
        assert heard(prompt.recording(which.name)) == "", which.name
