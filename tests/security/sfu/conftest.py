"""The media tests' real server and participants, for the attacks on the SFU."""

from __future__ import annotations

import pytest

from tests.media.conftest import (  # noqa: F401  (fixtures, shared with tests/media)
    audio_frames,
    base_url,
    join,
    media_settings,
    server,
    video_frames,
)
from tests.media.simulcast_publisher import encode_layers
from tests.media.support import Encoded


@pytest.fixture(scope="module")
def layer_frames() -> list[list[Encoded]]:
    """Three simulcast layers, encoded once."""
    return encode_layers()
