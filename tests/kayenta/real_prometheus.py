"""Start a real Prometheus (Debian's ``prometheus`` and ``promtool``) on backfilled data.

OpenMetrics with timestamps is turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics`` and served from a temp dir on an ephemeral 127.0.0.1 port. Missing binaries FAIL
the tests unless ``KONG_CANARY_ALLOW_MISSING_PROMETHEUS=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ALLOW_MISSING = "KONG_CANARY_ALLOW_MISSING_PROMETHEUS"


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path:
        return path
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(f"{name} not installed and {ALLOW_MISSING}=1")
    pytest.fail(f"{name} not installed (install Prometheus or set {ALLOW_MISSING}=1)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_backfilled(work: Path, text: str) -> Iterator[httpx.Client]:
    """A Prometheus on 127.0.0.1 (ephemeral port) serving ``text`` (OpenMetrics with
    timestamps, ``# EOF``) from TSDB blocks in ``work``; stopped on exit."""
    prom, promtool = _binary("prometheus"), _binary("promtool")
    data = work / "data.om"
    data.write_text(text, encoding="utf-8")
    tsdb = work / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(data), str(tsdb)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data.unlink()
    config = work / "prometheus.yml"
    config.write_text("global: {}\n", encoding="utf-8")
    port = _free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prom,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {(work / 'prometheus.log').read_text()}")
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
