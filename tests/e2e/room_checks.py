"""Checks the room's browser tests share: axe-core in the page, layout measurements."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import ROOT

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"


async def axe_violations(page: Any, view: str) -> list[str]:
    """axe-core's violations on the page as it is now (one line per rule and node)."""
    if not await page.evaluate("() => Boolean(window.axe)"):
        # Evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays on.
        await page.evaluate(AXE.read_text() + "\n;undefined")
    found = await page.evaluate(
        """async () => {
          const result = await axe.run(document, { resultTypes: ["violations"] });
          return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
        }"""
    )
    return [f"{view}: {line}" for line in found]


NO_HORIZONTAL_SCROLL = (
    "() => document.documentElement.scrollWidth <= window.innerWidth"
    " && document.body.scrollWidth <= window.innerWidth"
)
