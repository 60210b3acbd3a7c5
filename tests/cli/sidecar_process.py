"""Running ``python -m sidecar`` as a real process in tests: ports, waiting, stopping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

TOKEN = "serve-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def process(
    args: list[str], env: dict[str, str], stdout: Any = subprocess.PIPE, stderr: Any = None
) -> Iterator[subprocess.Popen]:
    """``python -m sidecar ARGS``, stopped with SIGTERM at the end. Output goes to a pipe
    (stderr merged) unless files are given: a test that makes much output must pass files,
    or the server blocks writing to a pipe nobody reads."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", *args],
        env={**os.environ, **env},
        stdout=stdout,
        stderr=subprocess.STDOUT if stderr is None else stderr,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def sidecar_env(**extra: str) -> dict[str, str]:
    env = {"KONG_CANARY_TOKENS": f"spinnaker:admin={TOKEN}", "KONG_CANARY_LOG_LEVEL": "warning"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, **extra}
