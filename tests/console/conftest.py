"""The console's browser tests use the end-to-end suite's Chromium and server fixtures."""

from tests.e2e.conftest import base_url, launcher

__all__ = ["base_url", "launcher"]
