"""The meetings suite's real SMTP server (which receives the digests) and app nodes, here
with the app's own inbound SMTP endpoint on a free loopback port."""

from __future__ import annotations

from tests.meetings.conftest import make_node, smtp

__all__ = ["make_node", "smtp"]
