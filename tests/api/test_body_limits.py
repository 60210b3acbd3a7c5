"""Request-size cap of the JSON API and bounded echoes in error messages (issue 13, item 9).

Bodies are refused while being read, before any Kong call: the Kong here answers nothing but
records every call, so "no Kong request" is checked, not assumed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from sidecar.api.schemas import SET_SPLIT
from sidecar.app import close_app, create_app
from sidecar.core.split import VARIANTS
from sidecar.errors import MAX_ECHO_CHARS, MAX_MESSAGE_CHARS, ApiError, cut
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.gateway.conftest import FakeKong

TOKEN = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
AUTH = {"Authorization": f"Bearer {TOKEN.token}"}
SPLIT = {"stable": 95, "baseline": 2.5, "canary": 2.5}
LIMIT = 64 * 1024


@pytest.fixture
def kong() -> FakeKong:
    return FakeKong({})


def app_with(kong: FakeKong, **settings: Any) -> Flask:
    config = Settings(
        tokens=(TOKEN,), kong=KongSettings(admin_url="http://kong.test:8001"), **settings
    )
    return create_app(config, kong=kong.admin(), sweep_leases=False)


@pytest.fixture
def app(kong: FakeKong) -> Iterator[Flask]:
    app = app_with(kong, max_body_bytes=LIMIT)
    yield app
    close_app(app)


def put_split(app: Flask, data: bytes, *, chunked: bool = False):  # type: ignore[no-untyped-def]
    builder = EnvironBuilder(
        "/v1/upstreams/orders/split", method="PUT", input_stream=io.BytesIO(data), headers=AUTH
    )
    environ = builder.get_environ()
    environ["CONTENT_LENGTH"] = str(len(data))
    if chunked:  # no Content-Length; gunicorn marks a chunked body wsgi.input_terminated
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
    with app.test_client() as client:
        return client.open(environ)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_past_max_body_bytes_is_413_before_any_kong_call(
    app: Flask, kong: FakeKong, chunked: bool
) -> None:
    body = json.dumps({"split": SPLIT, "reason": "x" * LIMIT}).encode()
    response = put_split(app, body, chunked=chunked)
    assert response.status_code == 413
    assert response.get_json() == {
        "error": {
            "code": "body_too_large",
            "message": f"the request body is larger than {LIMIT} bytes (setting max_body_bytes)",
            "field": "body",
        }
    }
    assert kong.calls == []


def test_a_body_under_the_limit_is_read(app: Flask, kong: FakeKong) -> None:
    response = put_split(app, json.dumps({"split": SPLIT, "reason": "x" * 1000}).encode())
    assert response.status_code == 404  # read, validated, then Kong: no upstream "orders"
    assert kong.calls


def test_the_largest_body_the_schema_admits_fits_the_default_limit(kong: FakeKong) -> None:
    targets = SET_SPLIT["properties"]["targets"]["properties"]
    longest, most = targets["canary"]["items"]["maxLength"], targets["canary"]["maxItems"]
    body = {
        "split": SPLIT,
        "expect": SPLIT,
        "targets": {
            v: [f"{n:03d}".rjust(longest - 3, "a") + ":80" for n in range(most)] for v in VARIANTS
        },
        "reason": "r" * SET_SPLIT["properties"]["reason"]["maxLength"],
        "context": {k: "c" * 256 for k in SET_SPLIT["properties"]["context"]["properties"]},
        "dry_run": True,
        "force": True,
    }
    data = json.dumps(body).encode()
    assert Settings().max_body_bytes > len(data) > 1_500_000
    app = app_with(kong)
    try:
        response = put_split(app, data)
    finally:
        close_app(app)
    # read and through the schema: refused by the next rule (a 512-character hostname)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"].startswith("targets.")


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"split": SPLIT, "reason": "x" * 1_000_000}, "reason", "is too long"),
        ({"split": {"stable": "9" * 500_000}}, "split.stable", ""),
        ({"split": SPLIT, "k" * 500_000: 1}, "k" * 100, ""),
        (
            {"split": SPLIT, "context": {"user": ["u" * 500_000]}},
            "context.user",
            "is not of type 'string'",
        ),
    ],
    ids=["long-reason", "long-number-string", "long-unknown-key", "long-list"],
)
def test_422_messages_quote_a_bounded_part_of_the_value(
    kong: FakeKong, body: dict[str, Any], field: str, rule: str
) -> None:
    app = app_with(kong)
    try:
        response = put_split(app, json.dumps(body).encode())
    finally:
        close_app(app)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert len(error["message"]) <= MAX_MESSAGE_CHARS
    assert len(error["field"]) <= 3 * MAX_ECHO_CHARS
    assert error["field"].startswith(field[:100])
    assert error["message"].endswith(rule)
    assert len(response.get_data()) < 2 * MAX_MESSAGE_CHARS
    assert kong.calls == []


@given(st.text(max_size=5000), st.integers(min_value=40, max_value=2000))
def test_cut_keeps_both_ends_and_stays_within_the_limit(text: str, limit: int) -> None:
    out = cut(text, limit)
    if len(text) <= limit:
        assert out == text
    else:
        assert len(out) <= limit
        assert "characters cut]" in out
        head, _, rest = out.partition("…[")
        tail = rest.partition("]…")[2]
        assert text.startswith(head) and text.endswith(tail)
        assert len(head) + len(tail) + int(rest.split(" ")[0]) == len(text)


def test_every_api_error_is_bounded_whatever_its_author_passed() -> None:
    error = ApiError(422, "invalid_field", "x: " + "v" * 10_000_000 + " must be short", field="f")
    assert len(error.body()["error"]["message"]) <= MAX_MESSAGE_CHARS
    assert error.message.endswith(" must be short")


def test_a_schema_error_quotes_at_most_max_echo_chars_of_the_value(kong: FakeKong) -> None:
    app = app_with(kong)
    try:
        response = put_split(app, json.dumps({"split": SPLIT, "reason": "x" * 5000}).encode())
    finally:
        close_app(app)
    message = response.get_json()["error"]["message"]
    assert message.startswith("reason: 'xxx") and message.endswith("' is too long")
    assert len(message) <= len("reason: ") + MAX_ECHO_CHARS + len(" is too long")
