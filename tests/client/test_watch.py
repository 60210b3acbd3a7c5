"""``kong-canary watch``: the screen as a person sees it (rich's console capture at a fixed
width, and the real command in a pseudo-terminal), and plain lines when piped."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import yaml
from rich.console import Console

from sidecar.client.watch import plain_line, watch_screen
from tests.client.conftest import READ_TOKEN, WRITE_TOKEN

TARGETS = {"canary": ["10.0.0.3:80"], "baseline": ["10.0.0.2:80"]}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _start_ramp(live, upstream, *, duration: float, steps: int, started_ago: float = 0.0) -> str:
    body = {"split": {"stable": 80, "baseline": 10, "canary": 10}, "duration": duration,
            "steps": steps, "targets": TARGETS}  # fmt: skip
    if started_ago:
        start = datetime.now(UTC) - timedelta(seconds=started_ago)
        body["start_at"] = start.isoformat()
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as c:
        r = c.post(f"/v1/upstreams/{upstream}/ramps", json=body)
        assert r.status_code == 202, r.text
        ramp_id = r.json()["id"]
        assert c.get(f"/v1/ramps/{ramp_id}").status_code == 200  # Orca's poll: step due now
    return ramp_id


def _status(live, upstream) -> dict:
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {READ_TOKEN}"}) as c:
        return c.get("/v1/status", params={"upstream": upstream}).json()


def test_the_screen_shows_split_progress_eta_and_lease(live, upstream):
    # 4 steps over 100 s, started 50 s ago: step 2 of 4 is in force, the next due in ~25 s
    _start_ramp(live, upstream, duration=100, steps=4, started_ago=50)
    status = _status(live, upstream)
    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    page = f"{live.url}/?upstream={upstream}"
    console.print(watch_screen(status, upstream, status["generated_at"], page, None))
    screen = console.export_text()
    assert f"kong-canary watch {upstream}" in screen
    assert f"status page: {page}" in screen
    assert re.search(r"stable\s+█{36}\s+90 %", screen)  # 80/10/10 halfway from 100/0/0
    assert re.search(r"canary\s+██\s+5 %", screen)
    assert re.search(r"ramp\s+█{10}\s+50%\s+RUNNING\s+to 80/10/10\s+next step in 2\ds\s+ETA 5\ds",
                     screen)  # fmt: skip
    assert re.search(r"lease\s+returns to stable in 1h 00m", screen)
    assert re.search(r"\d\d:\d\d:\d\d\s+ramp_started\s+spinnaker\s+RUNNING", screen)
    assert "no gateway metrics" in screen


def test_piped_output_is_plain_lines(live, upstream):
    _start_ramp(live, upstream, duration=3600, steps=4)
    result = live.run("watch", upstream, "--interval", "0.5", "--count", "2", token=READ_TOKEN)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0] == f"kong-canary watch {upstream} (status page: {live.url}/?upstream={upstream})"
    )
    assert len(lines) == 3
    for line in lines[1:]:
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d {upstream} split 100/0/0 ramp RUNNING 0% next 1\dm \d\ds "
            r"eta (1h 00m|59m \d\ds) lease none",  # stable-only until the first step
            line,
        ), line
    assert "\x1b" not in result.stdout


def test_watch_of_an_unknown_upstream_or_without_a_token_ends_with_its_code(live):
    assert live.run("watch", "nope-x", "--count", "1").exit_code == 1
    assert live.run("watch", "nope-x", "--count", "1", token=None).exit_code == 4


def _drive(live, ramp_id: str, stop: threading.Event) -> None:
    """Orca's polls: they move the ramp on while the watch only looks."""
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as c:
        while not stop.wait(0.3):
            c.get(f"/v1/ramps/{ramp_id}")


def _screen_text(captured: bytes) -> str:
    return ANSI.sub("", captured.decode("utf-8", "replace"))


def test_the_live_view_in_a_terminal_moves_with_the_ramp_and_quits_on_ctrl_c(live, upstream):
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "KONG_CANARY_URL": live.url, "KONG_CANARY_TOKEN": READ_TOKEN,
           "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}  # fmt: skip
    env.pop("NO_COLOR", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "watch", upstream, "--interval", "0.5"],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, close_fds=True,
    )  # fmt: skip
    os.close(child_fd)
    captured = b""
    stop = threading.Event()

    def read_until(pattern: re.Pattern[str], seconds: float) -> None:
        nonlocal captured
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not pattern.search(_screen_text(captured)):
            if select.select([main_fd], [], [], 0.5)[0]:
                captured += os.read(main_fd, 65536)

    try:
        # the ramp starts once the view is up (however slowly the process starts), so the
        # screen sees every step whatever the machine's load
        read_until(re.compile(r"canary\s+0 %"), 60)
        ramp_id = _start_ramp(live, upstream, duration=4, steps=4)
        threading.Thread(target=_drive, args=(live, ramp_id, stop), daemon=True).start()
        read_until(re.compile(r"canary\s+[█▏▎▍▌▋▊▉ ]*\s10 %.*SUCCEEDED", re.S), 60)
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=20) == 0
        while select.select([main_fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            captured += chunk
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        os.close(main_fd)
    text = _screen_text(captured)
    assert "\x1b[" in captured.decode("utf-8", "replace")  # a live terminal view, not lines
    assert f"kong-canary watch {upstream}" in text and "Ctrl-C quits" in text
    shown = {float(v) for v in re.findall(r"canary\s+[█▏▎▍▌▋▊▉ ]*\s(\d+(?:\.\d+)?) %", text)}
    assert {0.0, 10.0} <= shown and len(shown) >= 3, shown  # the split moved on screen
    assert re.search(r"ramp\s+[█▏▎▍▌▋▊▉ ]+\s+(25|50|75)%\s+RUNNING", text)
    assert re.search(r"next step in \ds\s+ETA \ds", text)
    assert "SUCCEEDED" in text
    assert "Traceback" not in text


def _kong_log(live, upstream: str, target: str, statuses: list[int], latency_ms: float) -> None:
    """Kong's http-log batch (the fields every recorded version has), as Kong posts it."""
    ip, port = target.rsplit(":", 1)
    entries = [
        {"service": {"host": upstream}, "response": {"status": status},
         "latencies": {"request": latency_ms, "proxy": latency_ms - 1},
         "tries": [{"ip": ip, "port": int(port)}]}
        for status in statuses
    ]  # fmt: skip
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as c:
        r = c.post("/v1/kong-log", json=entries)
        assert r.status_code == 200, r.text


def test_watch_shows_per_variant_rate_5xx_and_p99_from_the_gateway_metrics(live, upstream):
    assert live.run("set", upstream, "90/5/5", "--canary", "10.0.0.3:80", "--baseline",
                    "10.0.0.2:80").exit_code == 0  # fmt: skip
    assert live.run("watch", upstream, "--count", "1").exit_code == 0  # first reading
    _kong_log(live, upstream, "10.0.0.3:80", [200] * 90 + [503] * 10, 95.0)
    _kong_log(live, upstream, "10.0.0.2:80", [200] * 100, 18.0)
    time.sleep(1.0)
    status = _status(live, upstream)
    metrics = status["upstreams"][0]["metrics"]
    assert metrics["available"] is True
    canary, baseline = metrics["now"]["canary"], metrics["now"]["baseline"]
    assert canary["error_ratio"] == 0.1 and baseline["error_ratio"] == 0.0
    assert 80 < canary["p99_ms"] <= 100 and 15 < baseline["p99_ms"] <= 20
    assert 0 < canary["rps"] < 100.0  # 100 requests over the time between two readings
    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    console.print(watch_screen(status, upstream, status["generated_at"], "page", None))
    screen = console.export_text()
    assert re.search(r"canary\s+\d+\.\d\s+10\.00%\s+\d+(\.\d)?", screen), screen
    assert re.search(r"baseline\s+\d+\.\d\s+0\.00%\s+1\d(\.\d)?", screen), screen
    line = plain_line(status, status["generated_at"])
    assert re.search(r"canary 5xx 10\.00% p99 \d+(\.\d)?ms$", line), line


def test_watch_for_scripts_prints_one_json_object_per_poll(live, upstream):
    _start_ramp(live, upstream, duration=3600, steps=4)
    result = live.run("watch", upstream, "--interval", "0.5", "--count", "2", "-o", "json")
    assert result.exit_code == 0, result.output
    polls = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(polls) == 2
    assert all(p["upstream"] == upstream and p["ramp"]["status"] == "RUNNING" for p in polls)
    as_yaml = live.run("watch", upstream, "--count", "1", "-o", "yaml")
    (document,) = [d for d in yaml.safe_load_all(as_yaml.stdout) if d]
    assert document["ramp"]["target"] == {"stable": 80.0, "baseline": 10.0, "canary": 10.0}
