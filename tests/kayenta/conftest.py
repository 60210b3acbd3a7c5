"""A real Prometheus on 127.0.0.1 with backfilled synthetic Kong/app data (no scraping, no waiting).

The data (``synth.openmetrics``) is served by ``real_prometheus.serve_backfilled``; tests then
query a historic window.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sidecar.kayenta.library import load_rendered
from tests.kayenta.real_prometheus import _binary as _binary  # re-exported: tests/gateway
from tests.kayenta.real_prometheus import _free_port as _free_port
from tests.kayenta.real_prometheus import serve_backfilled
from tests.kayenta.synth import openmetrics


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    work = tmp_path_factory.mktemp("prometheus")
    with serve_backfilled(work, openmetrics(list(load_rendered()))) as client:
        yield client
