"""Records the phone prompts' voice files (`voice/*.wav`) from their texts in prompt.py.

    python -m server.phone.recordings   # after changing a prompt's text

A developer's tool, not used while serving: it needs Debian's `flite` (`apt-get install
-y flite`), speaks each text with its clearest US English voice, and writes 8 kHz mono
16-bit files, trimmed of silence at both ends and brought to one peak level.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

from server.phone.g711 import Samples
from server.phone.prompt import PROMPTS, RATE, VOICE, Prompt

FLITE_VOICE = "slt"  # flite's clearest US English voice
VOICE_PEAK = 0.5 * 32767  # speech peaks higher than tones for the same loudness


def record(prompt: Prompt) -> Samples:
    """Speak `prompt.text` with flite, as 8 kHz samples: trimmed of silence at both ends
    and brought to `VOICE_PEAK`."""
    import av

    flite = shutil.which("flite")
    if flite is None:
        raise SystemExit("flite is not installed (apt-get install -y flite)")
    with tempfile.TemporaryDirectory() as tmp:
        spoken = Path(tmp) / "spoken.wav"
        subprocess.run(
            [flite, "-voice", FLITE_VOICE, "-t", prompt.text, "-o", str(spoken)], check=True
        )
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        with av.open(str(spoken)) as container:
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float64)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    samples = samples[loud[0] : loud[-1] + 1]
    return (samples * VOICE_PEAK / np.abs(samples).max()).astype(np.int16)


def main() -> None:
    """Record every prompt into voice/ (run after changing a prompt's text)."""
    VOICE.mkdir(exist_ok=True)
    for prompt in PROMPTS:
        samples = record(prompt)
        with wave.open(str(VOICE / f"{prompt.name}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(samples.astype("<i2").tobytes())
        print(f"voice/{prompt.name}.wav: {len(samples) / RATE:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
