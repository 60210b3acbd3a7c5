"""``kong-canary kong-local`` as a real process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("upstreams:\n  - name: shop\n    targets:\n      - target: 127.0.0.1:9200\n")
    exe = shutil.which("kong-canary")
    cmd = [exe] if exe else [sys.executable, "-m", "sidecar"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            *cmd,
            "kong-local",
            "--kong-version",
            "2.8",
            "--bind",
            "127.0.0.1:0",
            "--seed",
            str(seed),
            "--dns",
            "a.svc=10.0.0.1,10.0.0.2",
            "--untrusted-lua",
            "off",
            "--disable-plugin",
            "post-function",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "NOT a real Kong" in banner
        url = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert url, banner
        r = httpx.get(url.group(0) + "/", timeout=5)
        assert r.status_code == 200 and r.json()["version"] == "2.8.5"
        assert r.json()["configuration"]["untrusted_lua"] == "off"
        assert "post-function" not in r.json()["plugins"]["available_on_server"]
        targets = httpx.get(url.group(0) + "/upstreams/shop/targets", timeout=5).json()["data"]
        assert [t["target"] for t in targets] == ["127.0.0.1:9200"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None
    assert proc.returncode is not None


def test_bind_and_dns_parsing() -> None:
    from click import BadParameter

    from sidecar.kong_local.cli import parse_bind, parse_dns

    assert parse_bind("0.0.0.0:8001") == ("0.0.0.0", 8001)
    assert parse_bind("[::1]:0") == ("::1", 0)
    assert parse_dns(("a=1.1.1.1, 2.2.2.2",)) == {"a": ["1.1.1.1", "2.2.2.2"]}
    with pytest.raises(BadParameter):
        parse_bind("nohost")
    with pytest.raises(BadParameter):
        parse_dns(("justahost",))
