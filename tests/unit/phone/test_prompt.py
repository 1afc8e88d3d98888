"""The caller's prompts: recorded words (or tones), at the phone's rate, never silent."""

from __future__ import annotations

import numpy as np
import pytest

from server.phone import prompt


@pytest.mark.parametrize("which", prompt.PROMPTS, ids=lambda p: p.name)
def test_each_prompt_is_spoken_then_pauses(which: prompt.Prompt) -> None:
    words = prompt.recording(which.name)
    samples = prompt.render(which)
    seconds = len(words) / prompt.RATE
    # About 2-3.5 words a second for the text it says: the recording is that text.
    assert len(which.text.split()) / 4 < seconds < len(which.text.split()) / 1.5, seconds
    assert 0.3 * 32767 < np.abs(words.astype(np.int32)).max() <= 0.55 * 32767
    # Speech: energy comes and goes (syllables), unlike a tone's flat envelope.
    frames = words[: len(words) // 160 * 160].astype(np.float64).reshape(-1, 160)
    energy = np.sqrt((frames**2).mean(axis=1))
    assert energy.std() / energy.mean() > 0.2  # a tone: ~0.02
    pause = samples[len(words) :]
    assert samples.dtype == np.int16 and not pause.any()
    assert len(pause) == prompt.RATE * which.pause_ms // 1000


def test_tones_instead_of_words() -> None:
    beeps = prompt.render(prompt.ASK_PIN, voice=False)
    assert len(beeps) == prompt.RATE * sum(ms for _, ms in prompt.ASK_PIN.tones) // 1000
    spectrum = np.abs(np.fft.rfft(beeps[: prompt.RATE * 150 // 1000]))
    peak_hz = np.argmax(spectrum) * prompt.RATE / (2 * (len(spectrum) - 1))
    assert abs(peak_hz - 660) < 15
    assert not np.array_equal(beeps[:1000], prompt.render(prompt.ASK_PIN)[:1000])


def test_a_recording_in_the_wrong_format_is_refused(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import wave

    with wave.open(str(tmp_path / "odd.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(3200))
    monkeypatch.setattr(prompt, "VOICE", tmp_path)
    with pytest.raises(ValueError, match="not 8 kHz mono 16-bit"):
        prompt.recording("odd")
