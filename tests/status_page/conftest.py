"""The status page in headless Chromium against the real sidecar and local Kong (the CLI
tests' server fixtures)."""

from __future__ import annotations

from tests.client.conftest import live, upstream

__all__ = ["live", "upstream"]
