"""The SFU relies on aiortc internals (server/media/aiortc_internals/, one module per
concern): this fails loudly the moment an aiortc upgrade changes one of them."""

from __future__ import annotations

import pkgutil
from types import ModuleType

import pytest
from aiortc import RTCRtpSender

from server.media import aiortc_internals


async def test_the_aiortc_internals_the_sfu_relies_on_are_there() -> None:
    aiortc_internals.check(again=True)


async def test_check_notices_a_missing_internal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(RTCRtpSender, "_send_keyframe")
    with pytest.raises(aiortc_internals.AiortcInternalsChanged, match="_send_keyframe"):
        aiortc_internals.check(again=True)


def test_check_runs_every_module_of_the_package() -> None:
    modules = {m.name for m in pkgutil.iter_modules(aiortc_internals.__path__)} - {"base"}
    checked = {m.__name__.rsplit(".", 1)[1] for m in aiortc_internals.MODULES}
    assert checked == modules


@pytest.mark.parametrize(
    "module", aiortc_internals.MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1]
)
async def test_each_module_finds_what_it_relies_on(module: ModuleType) -> None:
    assert module.problems() == []
