"""The SFU relies on aiortc internals (server/media/aiortc_internals.py): this fails loudly
the moment an aiortc upgrade changes one of them."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpSender

from server.media import aiortc_internals


async def test_the_aiortc_internals_the_sfu_relies_on_are_there() -> None:
    aiortc_internals.check()


async def test_check_notices_a_missing_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    with pytest.raises(aiortc_internals.AiortcInternalsChanged, match="_send_keyframe"):
        aiortc_internals.check()
