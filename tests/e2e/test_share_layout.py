"""The room while a partner shares a screen, in Chromium at the sizes people use: the share
is the large thing, every camera stays visible in tiles beside or below it (never under
the control bar, never over the share), an open chat keeps its column and its message box,
nothing scrolls sideways, and the room comes back as it was when the share stops.

Before style.css placed `#screens`, the share became one more cell of the stage's grid: at
1280x800 the chat was pushed under it, 78 px tall with its message box below the window;
with the chat closed the participants collapsed to a 5 px line; on a phone held sideways
the control bar covered the share's foot and two of three tiles; upright, 220 px of empty
space stood between the share and the tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e import test_screenshare
from tests.e2e.conftest import OpenPage
from tests.e2e.room_checks import axe_violations
from tests.e2e.test_screenshare import decoding, share_of

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# The sharer's browser: Chromium shares its fake screen without a prompt.
sharing_context = test_screenshare.sharing_context


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    phone: bool = False
    # one more participant: three tiles to fit beside the share
    third: bool = False

    @property
    def upright(self) -> bool:
        return self.phone and self.height > self.width

    def options(self) -> dict[str, Any]:
        return {
            "viewport": {"width": self.width, "height": self.height},
            "has_touch": self.phone,
            "is_mobile": self.phone,
            # no transitions: the boxes are measured where they settle
            "reduced_motion": "reduce",
        }


SIZES = {
    "laptop-1280x800": Size(1280, 800),
    "laptop-1366x768": Size(1366, 768),
    "phone-sideways-844x390": Size(844, 390, phone=True, third=True),
    "phone-upright-390x844": Size(390, 844, phone=True),
}

# Boxes of what a viewer sees, in CSS pixels of the window (null: not shown).
MEASURE = """() => {
  const box = (el) => {
    if (!el) return null;
    const r = el.getBoundingClientRect();
    return r.width && r.height ? {x: r.x, y: r.y, w: r.width, h: r.height} : null;
  };
  const video = document.querySelector("#screens .screen-share video");
  return {
    stage: box(document.getElementById("stage")),
    share: box(video),
    fit: video && getComputedStyle(video).objectFit,
    caption: box(document.querySelector("#screens figcaption")),
    controls: box(document.querySelector(".controls")),
    input: box(document.getElementById("chat-input")),
    panel: box(document.getElementById("chat")),
    layout: document.getElementById("tiles").dataset.layout,
    tiles: Object.fromEntries([...document.querySelectorAll("#tiles .tile")].map(
      (t) => [t.dataset.identity, {...box(t), place: t.dataset.place}])),
    view: {w: innerWidth, h: innerHeight},
    scrolls: document.documentElement.scrollWidth > innerWidth || document.body.scrollWidth > innerWidth,
  };
}"""

Box = dict[str, float]


def overlap(a: Box, b: Box) -> bool:
    """More than a pixel's sliver of `a` lies on `b`."""
    width = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return width > 1 and height > 1


def on_screen(a: Box, view: Box, controls: Box) -> bool:
    """Wholly in the window and above the control bar."""
    return (
        a["x"] >= -0.5
        and a["y"] >= -0.5
        and a["x"] + a["w"] <= view["w"] + 0.5
        and a["y"] + a["h"] <= controls["y"] + 0.5
    )


def check_sharing(seen: dict[str, Any], before: dict[str, Any], size: Size, chat: bool) -> None:
    """What must hold while the partner's share is shown (`seen`), given the room before."""
    stage, share, view, controls = seen["stage"], seen["share"], seen["view"], seen["controls"]
    assert share and seen["fit"] == "contain", seen
    assert not seen["scrolls"], seen
    # Large: on a laptop at least half the stage (what the chat's column leaves of it); on
    # a phone the window's whole width (upright), or much of both its width and height.
    if not size.phone:
        free = (seen["panel"]["x"] if chat else stage["x"] + stage["w"]) - stage["x"]
        assert share["w"] * share["h"] >= 0.5 * free * stage["h"], seen
    elif size.upright:
        assert share["w"] >= 0.9 * view["w"], seen
    else:
        assert share["w"] >= 0.4 * view["w"] and share["h"] >= 0.4 * view["h"], seen
    assert on_screen(share, view, controls), seen
    assert seen["caption"] and on_screen(seen["caption"], view, controls), seen
    for identity, tile in seen["tiles"].items():
        assert tile.get("w", 0) >= 80 and tile["h"] >= 45, (identity, seen)
        assert on_screen(tile, view, controls), (identity, seen)
        assert not overlap(tile, share), (identity, seen)
        assert not overlap(tile, seen["caption"]), (identity, seen)
    if size.upright:
        # The share is as tall as its picture: the caption and then the tiles follow it.
        tiles_top = min(t["y"] for t in seen["tiles"].values())
        assert tiles_top - (share["y"] + share["h"]) < 40 + seen["caption"]["h"], seen
    else:
        # Every camera in the strip, my own too (no small video floating over the share).
        assert seen["layout"] == "share", seen
        assert {t["place"] for t in seen["tiles"].values()} == {"strip"}, seen
        boxes = list(seen["tiles"].values())
        assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[:i]), seen
    if chat:
        # The chat keeps its column: its message box is whole, in the window, usable.
        box = seen["input"]
        assert box and on_screen(box, view, controls), seen
        assert box["h"] >= before["input"]["h"] - 0.5, (before["input"], seen)
        assert not overlap(box, share), seen


@pytest.mark.parametrize("name", SIZES)
async def test_a_shared_screen_is_large_with_every_camera_and_the_chat_beside_it(
    open_page: OpenPage, sharing_context: Any, name: str
) -> None:
    size = SIZES[name]
    ada = await open_page("ada", name="Ada Lovelace", role="mentor", context=sharing_context)
    if size.third:
        # without a camera (an avatar tile): one video less for a loaded machine to carry
        await open_page("cy", name="Cy Diaz", camera_allowed=False)
    bo = await open_page("bo", name="Bo Chen", **size.options())
    expected = 3 if size.third else 2
    await expect(bo.page.locator("#tiles .tile")).to_have_count(expected, timeout=20_000)
    await expect(bo.tile("ada")).to_have_attribute("data-video", "playing", timeout=20_000)
    chat = await bo.page.locator("#chat").is_visible()
    # The room opens with the chat on a laptop, on the video on a phone (sideways too).
    assert chat == (not size.phone)
    before = await bo.evaluate(MEASURE)
    await bo.screenshot(f"share-layout-{name}-before")

    await ada.page.get_by_role("button", name="Share screen").click()
    shown = share_of(bo, "ada")
    await expect(shown).to_be_visible(timeout=15_000)
    await decoding(bo, shown.locator("video"))
    await expect(bo.page.locator("#stage")).to_have_attribute("data-share", "shown")
    seen = await bo.evaluate(MEASURE)
    await bo.screenshot(f"share-layout-{name}-sharing")
    check_sharing(seen, before, size, chat)
    assert await axe_violations(bo.page, f"sharing at {name}") == []

    if not size.phone:
        # The chat closed: the share and the strip take the room it leaves.
        await bo.page.get_by_role("button", name="Chat").click()
        await expect(bo.page.locator("#chat")).to_be_hidden()
        closed = await bo.evaluate(MEASURE)
        await bo.screenshot(f"share-layout-{name}-sharing-chat-closed")
        check_sharing(closed, before, size, chat=False)
        assert closed["share"]["w"] * closed["share"]["h"] > seen["share"]["w"] * seen["share"]["h"]
        await bo.page.get_by_role("button", name="Chat").click()
        await expect(bo.page.locator("#chat")).to_be_visible()

    await ada.page.get_by_role("button", name="Stop sharing").click()
    await expect(shown).to_have_count(0, timeout=15_000)
    await expect(bo.page.locator("#stage")).not_to_have_attribute("data-share", "shown")
    after = await bo.evaluate(MEASURE)
    await bo.screenshot(f"share-layout-{name}-after")
    assert after == before
