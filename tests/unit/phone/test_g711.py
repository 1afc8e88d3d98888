import numpy as np
import pytest

from server.phone import g711


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_every_code_survives_a_round_trip(codec: str) -> None:
    codes = bytes(range(256))
    decoded = g711.decode(codec, codes)
    assert g711.decode(codec, g711.encode(codec, decoded)).tolist() == decoded.tolist()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_encoding_picks_a_nearby_level_for_every_sample(codec: str) -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    restored = g711.decode(codec, g711.encode(codec, samples)).astype(np.int32)
    error = np.abs(restored - samples)
    # G.711 steps grow with level: relative error stays within about 1/16 (one step),
    # and quiet samples stay quiet.
    loud = np.abs(samples.astype(np.int32)) > 256
    assert np.all(error[loud] <= np.abs(samples[loud].astype(np.int32)) / 15)
    assert np.all(error[~loud] <= 16)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_decoding_matches_ffmpeg(codec: str) -> None:
    import av

    context = av.CodecContext.create({"PCMU": "pcm_mulaw", "PCMA": "pcm_alaw"}[codec], "r")
    context.sample_rate, context.layout = 8000, "mono"
    frame = context.decode(av.Packet(bytes(range(256))))[0]
    assert frame.to_ndarray().reshape(-1).tolist() == g711.decode(codec, bytes(range(256))).tolist()


def test_silence_codes_decode_to_zero_level() -> None:
    for codec, code in g711.SILENCE.items():
        assert abs(int(g711.decode(codec, bytes([code]))[0])) <= 8
