"""transport-cc toward a publisher, in Chromium: the SFU negotiates it on what the page
sends and reports every packet's arrival back (server/media/transport_feedback.py), and
Chrome's own congestion control runs on that feedback. Its estimate of the uplink
(`availableOutgoingBitrate` of the selected candidate pair) rises while the link is
free, falls under a 300 kbit/s token bucket on the publisher's uplink alone, and comes
back once it is lifted. Without feedback Chrome's estimate stays where it started.

Ada's Chromium lives in a network namespace (tests/support/netns.py) so the cap acts on
her link only; Bo's, on this machine, receives her and sends his own video, which the
SFU forwards to Ada on sections that stay REMB (no transport-cc).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Settings
from server.media.transport_feedback import URI
from tests.e2e.conftest import Launcher, OpenPage, RoomPage
from tests.e2e.test_continuity import DEBUG, both_decode
from tests.e2e.test_network_faults import namespace_participant
from tests.support.netns import TestHost

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
async def server_port(aiohttp_server: Any, make_settings: Callable[..., Settings]) -> int:
    """The server on every interface, so the namespace reaches it over the veth pair; its
    SFU in a worker process, as by default, so the test's own work (Playwright, the
    pages' stats) does not delay its reading of packets: the arrival times it reports."""
    settings = make_settings(media_workers=1)
    server = await aiohttp_server(create_app(settings), host="0.0.0.0")
    return int(server.port)


@pytest.fixture
def base_url(server_port: int) -> str:
    return f"http://127.0.0.1:{server_port}"


AVAILABLE = """
async () => {
  const pc = window.pairwiseDebug.room.media.pc;
  if (!pc) return null;
  let rate = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) {
      rate = s.availableOutgoingBitrate;
    }
  });
  return rate;
}
"""

# Each m-line of the answer to the page's offer, and of the SFU's later offers: its
# direction (as the SFU sees it) and whether it names transport-cc.
SECTIONS = """
() => window.pairwiseDebug.room.media.pc.remoteDescription.sdp.split("\\r\\nm=").slice(1).map(
  (m) => ({
    kind: m.split(" ")[0],
    direction: (m.match(/a=(sendrecv|sendonly|recvonly|inactive)/) || [])[1],
    extension: m.includes("a=extmap:") && m.includes("transport-wide-cc"),
    feedback: /a=rtcp-fb:\\d+ transport-cc/.test(m),
  }))
"""


async def available_until(page: RoomPage, check: Any, seconds: float = 40) -> float:
    """Ada's estimate of her uplink, sampled every 0.5 s until it passes `check`."""
    rate = None
    for _ in range(int(seconds * 2)):
        rate = await page.evaluate(AVAILABLE)
        if rate is not None and check(rate):
            return float(rate)
        await page.page.wait_for_timeout(500)
    raise AssertionError(f"Ada's availableOutgoingBitrate stayed at {rate}")


def cap_uplink(host: TestHost, kbit: int) -> None:
    """A token bucket on what leaves the namespace: Ada's uplink only."""
    tbf = ("root", "tbf", "rate", f"{kbit}kbit", "burst", "32kbit", "latency", "400ms")
    subprocess.run(
        host.exec_args("tc", "qdisc", "replace", "dev", host.ns_if, *tbf),
        check=True,
        capture_output=True,
        timeout=20,
    )


async def test_chromium_estimates_its_uplink_from_the_sfu_feedback(
    open_page: OpenPage,
    launcher: Launcher,
    test_host: TestHost,
    server_port: int,
    tmp_path: Path,
) -> None:
    ada = await namespace_participant(
        open_page, launcher, test_host, server_port, tmp_path, identity="ada", diag=DEBUG
    )
    bo = await open_page("bo", diag=DEBUG)
    await both_decode(ada, bo, 20)

    sections = await ada.evaluate(SECTIONS)
    received = [s for s in sections if s["direction"] in ("recvonly", "sendrecv")]
    forwarded = [s for s in sections if s["direction"] == "sendonly"]
    assert received and forwarded, sections
    assert all(s["extension"] and s["feedback"] for s in received), sections
    assert not any(s["extension"] or s["feedback"] for s in forwarded), sections
    assert URI.endswith("transport-wide-cc-extensions-01")

    # Free: probing and the delay-based estimate take it well past Chrome's 300 kbit/s start.
    free = await available_until(ada, lambda rate: rate > 1_000_000)
    await asyncio.to_thread(cap_uplink, test_host, 300)
    capped = await available_until(ada, lambda rate: rate < 300_000)
    await asyncio.to_thread(test_host.heal)
    # Lifted, it climbs again: well over the cap (Chrome's ramp after a cap is slow; a
    # steady level is not asked for).
    recovered = await available_until(ada, lambda rate: rate > max(2 * capped, 450_000), 60)
    assert capped < free and recovered > capped * 2
    await both_decode(ada, bo, 10)
