"""Logging under the real ``kong-canary serve`` (gunicorn, two workers): JSON lines on stdout,
the audit trail present (one line per change, the lease sweeper's too), no secret anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.sidecar_process import TOKEN, free_port, process, sidecar_env, wait_until

pytestmark = pytest.mark.slow

RAMP_SECRET = "ramp-secret-for-the-logging-test"
CHANGE = {
    "split": {"stable": 90, "baseline": 5, "canary": 5},
    "targets": {"canary": ["127.0.0.1:9113"], "baseline": ["127.0.0.1:9112"]},
    "lease": 1,
    "context": {"user": "alice@example.com", "execution_id": "01HXLOGGING"},
}


def run_and_log(tmp_path: Path, level: str) -> tuple[list[dict], str]:
    """One split change with a 1 s lease (the sweeper rolls it back), requests that would
    put a token into an access line, then a clean stop. Returns stdout's records and all
    output."""
    port = free_port()
    env = sidecar_env(
        KONG_CANARY_LOG_LEVEL=level,
        KONG_CANARY_RAMP_SECRET=RAMP_SECRET,
        KONG_CANARY_LEASE_CHECK_INTERVAL="1",
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    with (
        out.open("w") as stdout,
        err.open("w") as stderr,
        process(args, env, stdout, stderr) as proc,
    ):
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_until(lambda: httpx.get(base + "/readyz").status_code == 200, 30, "readiness")
        r = httpx.put(base + "/v1/upstreams/orders/split", json=CHANGE, headers=auth)
        assert r.status_code == 200, r.text
        # A token in the path (an upstream named like it), a wrong one in the header.
        assert httpx.get(f"{base}/v1/upstreams/{TOKEN}/split", headers=auth).status_code
        wrong = {"Authorization": "Bearer wrong-token-wrong-token-0000"}
        assert httpx.get(base + "/v1/upstreams/orders/split", headers=wrong).status_code == 401

        def rolled_back() -> bool:
            view = httpx.get(base + "/v1/upstreams/orders/split", headers=auth).json()
            return view["split"]["canary"] == 0

        wait_until(rolled_back, 20, "the sweeper to roll the expired lease back")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = out.read_text()
    records = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    return records, text + err.read_text()


def test_serve_writes_one_audit_line_per_change_and_never_a_secret(tmp_path: Path) -> None:
    records, everything = run_and_log(tmp_path, "info")
    audit = [r["audit"] for r in records if r["logger"] == "kong_canary.audit"]
    assert [a["event"] for a in audit] == ["set_split", "lease_expired"], audit
    change = audit[0]
    assert change["result"] == "applied"
    assert change["token"] == "spinnaker"  # the token's name, never its value
    assert change["user"] == "alice@example.com"
    assert change["after"] == {"stable": 90.0, "baseline": 5.0, "canary": 5.0}
    assert audit[1]["after"] == {"stable": 100.0, "baseline": 0.0, "canary": 0.0}
    access = [r["http"] for r in records if r["logger"] == "gunicorn.access"]
    assert {"method": "PUT", "status": 200} in [
        {"method": a["method"], "status": a["status"]} for a in access
    ]
    assert any("[redacted]" in a["path"] for a in access)  # the path that held the token
    assert {r["logger"] for r in records} >= {"gunicorn.error", "gunicorn.access"}
    for secret in (TOKEN, RAMP_SECRET, "wrong-token-wrong-token-0000"):
        assert secret not in everything


def test_the_log_level_silences_diagnostics_but_not_the_audit_trail(tmp_path: Path) -> None:
    records, _ = run_and_log(tmp_path, "warning")
    assert {r["logger"] for r in records} == {"kong_canary.audit"}
    assert [r["audit"]["event"] for r in records] == ["set_split", "lease_expired"]


def test_cli_commands_log_json_lines_to_stderr_and_keep_stdout_for_their_output() -> None:
    """Any command (here ``kong-canary spinnaker --help``) logs through the same handler;
    stdout stays the command's."""
    code = (
        "import logging, sys\n"
        "from sidecar.cli import main\n"
        "sys.argv = ['kong-canary', 'spinnaker', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "logging.getLogger('kong_canary.test').warning('after the command')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.startswith("Usage:")
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["logger"] == "kong_canary.test"
    assert line["message"] == "after the command"
