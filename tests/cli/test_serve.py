"""``kong-canary serve`` for real: gunicorn with several workers, the embedded Kong,
metrics merged across workers, and a restart that finds the state where it left it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from tests.cli.sidecar_process import TOKEN, free_port, process, sidecar_env, wait_until

pytestmark = pytest.mark.slow


def test_serve_on_the_embedded_kong_with_two_workers():
    port = free_port()
    env = sidecar_env()
    with process(["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env) as proc:
        base = f"http://127.0.0.1:{port}"
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
        ready = client.get("/readyz").json()
        assert ready["kong"]["embedded"] is True
        body = {
            "split": {"stable": 95, "baseline": 2.5, "canary": 2.5},
            "targets": {"canary": ["127.0.0.1:9113"], "baseline": ["127.0.0.1:9112"]},
        }
        r = client.put("/v1/upstreams/orders/split", json=body)
        assert r.status_code == 200, r.text
        # Many requests land on both workers; the counter must be their sum.
        for _ in range(40):
            assert client.get("/healthz").status_code == 200
        text = client.get("/metrics").text
        healthz = re.search(
            r'kong_canary_http_requests_total\{endpoint="/healthz",method="GET",status="200"\} '
            r"([0-9.]+)",
            text,
        )
        assert healthz is not None, text[:2000]
        assert float(healthz.group(1)) == 40
        assert 'kong_canary_upstream_split_percent{upstream="orders",variant="canary"} 2.5' in text
        assert re.search(r'pid="\d+"', text) is None  # merged, not one series per worker
        split = client.get("/v1/upstreams/orders/split").json()
        assert split["split"] == {"stable": 95, "baseline": 2.5, "canary": 2.5}
        client.close()
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    assert "NO REAL KONG IS ATTACHED" in output
    assert "Control socket" not in output  # no management socket under $HOME
    assert proc.returncode == 0, output[-2000:]


def test_bad_settings_stop_start_up_with_one_line_each():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "serve",
            "--bind",
            "nonsense",
            "--kong-admin-url",
            "ftp://kong",
        ],
        env={**os.environ, "KONG_CANARY_WORKERS": "0", "KONG_CANARY_TOKENS": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    for expected in ("bind:", "workers:", "kong_admin_url:", "tokens:"):
        assert expected in result.stderr, result.stderr


def test_killed_sidecar_mid_ramp_leaves_nothing_past_its_lease():
    """Kill -9 the sidecar that started a ramp; the next one (another replica, or the
    restarted pod) returns the upstream to stable once the lease lapses."""
    kong_port, port_a, port_b = free_port(), free_port(), free_port()
    with process(["kong-local", "--kong-version", "3.9", "--bind", f"127.0.0.1:{kong_port}"], {}):
        kong_url = f"http://127.0.0.1:{kong_port}"
        wait_until(lambda: httpx.get(kong_url + "/").status_code == 200, 20, "kong-local")
        env = sidecar_env(KONG_CANARY_KONG_ADMIN_URL=kong_url, KONG_CANARY_LEASE_CHECK_INTERVAL="1")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with process(["serve", "--bind", f"127.0.0.1:{port_a}", "--workers", "1"], env) as a:
            base = f"http://127.0.0.1:{port_a}"
            wait_until(lambda: httpx.get(base + "/readyz").status_code == 200, 30, "sidecar A")
            ramp = httpx.post(
                f"{base}/v1/upstreams/orders/ramps",
                headers=headers,
                json={
                    "schedule": [
                        {"stable": 95, "baseline": 2.5, "canary": 2.5},
                        {"stable": 90, "baseline": 5, "canary": 5},
                    ],
                    "interval": 1,
                    "lease": 1,
                    "targets": {"canary": ["127.0.0.1:9113"], "baseline": ["127.0.0.1:9112"]},
                },
            )
            assert ramp.status_code == 202, ramp.text
            os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=10)
        weights = {
            t["target"]: t["weight"]
            for t in httpx.get(f"{kong_url}/upstreams/orders/targets").json()["data"]
        }
        assert weights["127.0.0.1:9113"] > 0  # the dead sidecar left the canary in traffic
        with process(["serve", "--bind", f"127.0.0.1:{port_b}", "--workers", "1"], env):
            base_b = f"http://127.0.0.1:{port_b}"
            wait_until(lambda: httpx.get(base_b + "/readyz").status_code == 200, 30, "sidecar B")

            def back_to_stable() -> bool:
                data = httpx.get(f"{kong_url}/upstreams/orders/targets").json()["data"]
                return {t["target"]: t["weight"] for t in data}["127.0.0.1:9113"] == 0

            # Nobody polls the ramp any more (the pipeline is gone too): it stalls, and its
            # lease (1 s + the 1 s wait for the next step) lapses; B's sweeper rolls back.
            wait_until(back_to_stable, 20, "the lease to return traffic to stable")
            view = httpx.get(f"{base_b}/v1/upstreams/orders/split", headers=headers).json()
            assert view["split"] == {"stable": 100, "baseline": 0, "canary": 0}
            assert view["lease"] is None


def test_banner_names_the_port_gunicorn_bound_for_port_0(tmp_path):
    """``--bind 127.0.0.1:0`` (any free port): the banner's curl line must name the port
    actually listened on, not ``:0`` (the README's first command, run beside others)."""
    output = tmp_path / "serve.out"
    env = sidecar_env(KONG_CANARY_TOKENS="")
    with (
        output.open("w") as sink,
        process(["serve", "--bind", "127.0.0.1:0", "--workers", "1"], env, stdout=sink),
    ):
        line = wait_until(lambda: _line_with(output.read_text(), "Try: curl"), 30, "curl line")
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1/upstreams/orders/split", line)
        assert match is not None, line
        assert match.group(1) != "0", line
        base = f"http://127.0.0.1:{match.group(1)}"
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "readiness")


def _line_with(text: str, wanted: str) -> str | None:
    return next((line for line in text.splitlines() if wanted in line), None)
