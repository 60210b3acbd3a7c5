"""The body caps under ``kong-canary serve`` (gunicorn), where a chunked body has no
Content-Length and werkzeug counts what it reads (gunicorn sets ``wsgi.input_terminated``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_serve import TOKEN, free_port, process, sidecar_env, wait_until

pytestmark = pytest.mark.slow
LIMIT = 64 * 1024
ENTRY = json.loads(
    (
        Path(__file__).parents[1] / "fixtures" / "kong" / "kong-3.9.3-http-log-batches.json"
    ).read_text()
)["first_batches"][0]["body"][0]


def chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_bodies_past_the_caps_are_413_under_gunicorn_with_or_without_content_length():
    port = free_port()
    env = sidecar_env(
        KONG_CANARY_MAX_BODY_BYTES=str(LIMIT), KONG_CANARY_KONG_LOG_MAX_BODY_BYTES=str(4 * LIMIT)
    )
    with process(["serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"], env):
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            # gunicorn closes a kept-alive connection whose request body was left unread, so
            # each request gets its own connection
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        wait_until(lambda: client.get("/readyz").status_code == 200, 30, "readiness")
        split = {"split": {"stable": 100}, "reason": "x" * LIMIT}
        data = json.dumps(split).encode()
        for content in (data, chunks(data)):  # Content-Length, then Transfer-Encoding: chunked
            response = client.put("/v1/upstreams/orders/split", content=content)
            assert response.status_code == 413, response.text
            assert response.json()["error"]["code"] == "body_too_large"
            assert client.get("/healthz").status_code == 200
        # a batch over the API's cap but under its own is read and counted
        batch = json.dumps([ENTRY] * (2 * LIMIT // len(json.dumps(ENTRY)))).encode()
        assert LIMIT < len(batch) < 4 * LIMIT
        for content in (batch, chunks(batch)):
            response = client.post("/v1/kong-log", content=content)
            assert response.status_code != 413, response.text
        too_large = json.dumps([ENTRY] * (5 * LIMIT // len(json.dumps(ENTRY)))).encode()
        for content in (too_large, chunks(too_large)):
            response = client.post("/v1/kong-log", content=content)
            assert response.status_code == 413, response.text
        assert client.get("/healthz").status_code == 200
        client.close()
