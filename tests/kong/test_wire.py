"""Every way Kong (or what stands in front of it) can answer badly becomes a typed KongError.

Error bodies are the ones recorded from Kong 2.8.5/3.4.2/3.9.3 (tests/fixtures/kong) where a
recording exists; Konnect's problem+json follows [CP-API] components ``BadRequestError``.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.kong import errors, wire
from sidecar.kong.http import build_http_client
from sidecar.settings import KongSettings
from tests.kong.fakes import FakeKong, make_admin, raw_server, reply, upstream_body


def _recorded(fixtures_dir, version: str, step: str) -> tuple[int, dict]:
    data = json.loads((fixtures_dir / "kong" / f"kong-{version}-admin-targets.json").read_text())
    for row in data["steps"]:
        if row["step"] == step:
            return row["status"], row["response"]
    raise LookupError(step)


def _error(status: int, body, content_type: str = "application/json") -> errors.KongError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return wire.error_for("PATCH", "/upstreams/u/targets/t", status, content_type, raw)


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2", "3.9.3"])
def test_recorded_schema_violation_keeps_code_name_and_fields(fixtures_dir, version) -> None:
    status, body = _recorded(fixtures_dir, version, "patch target weight above max")
    err = _error(status, body)
    assert type(err) is errors.KongValidationError
    assert (err.status, err.code, err.name) == (400, 2, "schema violation")
    assert err.fields == {"weight": "value should be between 0 and 65535"}
    assert err.method == "PATCH" and err.path == "/upstreams/u/targets/t"


@pytest.mark.parametrize("version", ["3.4.2", "3.9.3"])
def test_recorded_3x_duplicate_post_is_conflict(fixtures_dir, version) -> None:
    status, body = _recorded(fixtures_dir, version, "create the same target again")
    err = _error(status, body)
    assert type(err) is errors.KongConflict
    assert (err.code, err.name) == (5, "unique constraint violation")
    assert err.fields["target"] == "10.0.0.1:80"


def test_recorded_plain_not_found(fixtures_dir) -> None:
    status, body = _recorded(fixtures_dir, "3.9.3", "read target by host without port")
    err = _error(status, body)
    assert type(err) is errors.KongNotFound
    assert (err.message, err.code, err.fields) == ("Not found", None, {})


def test_recorded_invalid_size(fixtures_dir) -> None:
    status, body = _recorded(fixtures_dir, "3.4.2", "list upstreams size=0")
    err = _error(status, body)
    assert type(err) is errors.KongValidationError and err.code == 9


def test_invalid_options_details_come_from_options() -> None:
    body = {"code": 11, "name": "invalid options", "message": "invalid option (tags: x)",
            "options": {"tags": "cannot mix the ',' and '/' operators"}}  # fmt: skip
    err = _error(400, body)
    assert err.fields == {"tags": "cannot mix the ',' and '/' operators"}


def test_rbac_forbidden_message() -> None:
    body = {"message": "alice, you do not have permissions to update this resource"}
    err = _error(403, body)
    assert type(err) is errors.KongAuthError
    assert err.message == body["message"] and err.status == 403


def test_problem_json_maps_detail_and_invalid_parameters() -> None:
    body = {
        "status": 400,
        "title": "Bad Request",
        "type": "https://httpstatuses.com/400",
        "instance": "kong:trace:123",
        "detail": "schema violation (weight: value should be between 0 and 65535)",
        "invalid_parameters": [
            {"field": "weight", "rule": "max", "reason": "value should be between 0 and 65535"}
        ],
    }
    err = _error(400, body, "application/problem+json")
    assert type(err) is errors.KongValidationError
    assert err.message == body["detail"] and err.name == "Bad Request"
    assert err.fields == {"weight": "value should be between 0 and 65535"}


def test_problem_json_not_found_and_unauthorised() -> None:
    nf = _error(404, {"status": 404, "title": "Not Found", "detail": "Not found"},
                "application/problem+json")  # fmt: skip
    assert type(nf) is errors.KongNotFound and nf.message == "Not found"
    auth = _error(401, {"status": 401, "title": "Unauthorized", "detail": "Invalid token"},
                  "application/problem+json")  # fmt: skip
    assert type(auth) is errors.KongAuthError and auth.message == "Invalid token"


def test_dbless_405_code_12_is_read_only_with_plain_message() -> None:
    # kong/db/strategies/off/init.lua, spec 15-off_spec.lua
    body = {"code": 12, "name": "operation unsupported",
            "message": "cannot update 'targets' entities when not using a database"}  # fmt: skip
    err = _error(405, body)
    assert type(err) is errors.KongReadOnly
    assert "control plane or Konnect" in err.message and err.code == 12


def test_plain_method_not_allowed_is_not_read_only(fixtures_dir) -> None:
    status, body = _recorded(fixtures_dir, "3.4.2", "put on the targets collection")
    err = _error(status, body)
    assert type(err) is errors.KongError and err.status == 405


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_side_failures_are_unavailable(status) -> None:
    err = _error(status, {"message": "An unexpected error occurred"})
    assert type(err) is errors.KongUnavailable and err.status == status


def test_html_502_from_a_proxy_is_unavailable_with_a_snippet() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    err = _error(502, page, "text/html")
    assert type(err) is errors.KongUnavailable
    assert "502 Bad Gateway" in err.message and "<html>" not in err.message


def test_html_404_means_we_are_not_talking_to_kong() -> None:
    err = _error(404, b"<html><body>Cannot GET /upstreams</body></html>", "text/html")
    assert type(err) is errors.KongProtocolError and err.status == 404
    assert "Cannot GET /upstreams" in err.message


def test_non_json_401_from_an_auth_proxy_is_auth_error() -> None:
    err = _error(401, b"Unauthorized", "text/plain")
    assert type(err) is errors.KongAuthError and err.message == "Unauthorized"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        (b'{"id": "u-1", "name": "ord', "application/json"),  # truncated
        (b"\xff\xfe garbage", "application/octet-stream"),
    ],
)
def test_200_that_is_not_json_is_protocol_error(body, content_type) -> None:
    fake = FakeKong().on(
        "GET", "/upstreams/orders", reply(200, body, **{"content-type": content_type})
    )
    admin = make_admin(fake, flavour=None)
    with pytest.raises(errors.KongProtocolError) as caught:
        admin.upstream("orders")
    assert caught.value.method == "GET" and caught.value.path == "/upstreams/orders"
    assert "GET /upstreams/orders" in str(caught.value)
    assert len(fake.requests) == 1  # a bad body is not a transient failure: no retry


@pytest.mark.parametrize(
    "body",
    [[upstream_body()], {"data": [upstream_body()]}, {"id": 5}, upstream_body(slots="many")],
)
def test_200_with_unexpected_shape_is_protocol_error(body) -> None:
    fake = FakeKong().on("GET", "/upstreams/orders", reply(200, body))
    with pytest.raises(errors.KongProtocolError, match="unexpected response shape"):
        make_admin(fake).upstream("orders")


def test_list_without_data_is_protocol_error() -> None:
    fake = FakeKong().on("GET", "/upstreams", reply(200, {"items": []}))
    with pytest.raises(errors.KongProtocolError, match="'data' list"):
        make_admin(fake).upstreams()


def test_redirect_is_not_followed() -> None:
    fake = FakeKong().on("GET", "/", reply(301, b"", location="https://kong:8444/"))
    with pytest.raises(errors.KongProtocolError, match="redirect to https://kong:8444/"):
        make_admin(fake).info()


# -- transport failures over real loopback sockets --------------------------------------------


def _settings(url: str, timeout: float = 0.3) -> KongSettings:
    return KongSettings(
        admin_url=url,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
    )


def test_slow_server_times_out_within_the_read_timeout() -> None:
    def never_answers(conn: socket.socket) -> None:
        time.sleep(3)

    with raw_server(never_answers) as url, build_http_client(_settings(url)) as http:
        started = time.monotonic()
        with pytest.raises(errors.KongUnavailable) as caught:
            wire.call(http, "GET", "/")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert caught.value.message == "timed out after 0.3 s reading the response"
    assert caught.value.status is None and caught.value.path == "/"


def test_dribbling_server_is_cut_off_by_the_total_budget() -> None:
    """httpx's read timeout is per read; a byte every 0.1 s would never trip it."""

    def dribble(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n")  # fmt: skip
        for _ in range(100):
            conn.sendall(b" ")
            time.sleep(0.1)

    settings = KongSettings(admin_url="x", connect_timeout=0.2, read_timeout=0.3,
                            write_timeout=0.2, pool_timeout=0.2)  # fmt: skip
    with (
        raw_server(dribble) as url,
        build_http_client(KongSettings(**{**settings.__dict__, "admin_url": url})) as http,
    ):
        started = time.monotonic()
        with pytest.raises(errors.KongUnavailable, match="too slowly"):
            wire.call(http, "GET", "/")
        assert time.monotonic() - started < 1.5


def test_connection_refused() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with (
        build_http_client(_settings(f"http://127.0.0.1:{port}")) as http,
        pytest.raises(errors.KongUnavailable) as caught,
    ):
        wire.call(http, "PATCH", "/upstreams/u/targets/t", body={"weight": 1})
    assert caught.value.message == "connection refused"
    assert str(caught.value) == "PATCH /upstreams/u/targets/t: connection refused"


def test_hang_up_before_answering() -> None:
    def hang_up(conn: socket.socket) -> None:
        conn.close()

    with (
        raw_server(hang_up) as url,
        build_http_client(_settings(url)) as http,
        pytest.raises(errors.KongUnavailable, match="closed the connection"),
    ):
        wire.call(http, "GET", "/")


def test_body_shorter_than_content_length() -> None:
    def truncate(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b'Content-Length: 500\r\n\r\n{"data": [')  # fmt: skip
        conn.shutdown(socket.SHUT_WR)

    with (
        raw_server(truncate) as url,
        build_http_client(_settings(url)) as http,
        pytest.raises(errors.KongUnavailable, match="closed the connection"),
    ):
        wire.call(http, "GET", "/upstreams")


def test_timeout_descriptions_name_the_phase() -> None:
    request = httpx.Request("GET", "http://kong/", extensions={"timeout": {
        "connect": 2.0, "read": 5.0, "write": 5.0, "pool": 1.5}})  # fmt: skip
    cases = {
        httpx.ConnectTimeout("x", request=request): "timed out after 2.0 s connecting to Kong",
        httpx.ReadTimeout("x", request=request): "timed out after 5.0 s reading the response",
        httpx.WriteTimeout("x", request=request): "timed out after 5.0 s sending the request",
        httpx.PoolTimeout("x", request=request):
            "timed out after 1.5 s waiting for a free connection from the pool",
    }  # fmt: skip
    for exc, text in cases.items():
        assert wire.describe_transport_error(exc) == text


_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
).map(lambda text: quote(text, safe=":"))
_PARAMS = st.none() | st.dictionaries(
    st.sampled_from(["size", "offset", "tags", "balancer_health"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    | st.integers(0, 1000)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(0, 3), min_size=1, max_size=2),
    max_size=3,
)


_BASES = ("http://kong:8001", "http://kong:8001/", "https://k.example/ws", "http://k/a/b/")


@pytest.fixture(scope="module")
def clients():
    """One client per base URL (building one per example would be most of the test's time)."""
    made = {base: httpx.Client(base_url=base) for base in _BASES}
    yield made
    for http in made.values():
        http.close()


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(_BASES),
    segments=st.lists(_SEGMENT, min_size=1, max_size=3),
    params=_PARAMS,
)
def test_the_url_wire_builds_is_the_one_httpx_builds(clients, base, segments, params) -> None:
    """``wire.absolute`` (parsed once per distinct call) must send exactly what httpx would
    send for the client's ``base_url``, the relative path and the query parameters."""
    path = "/" + "/".join(segments)
    http = clients[base]
    expected = http.build_request("GET", path, params=params).url
    assert wire.absolute(http.base_url, path, params) == expected
    assert str(wire.absolute(http.base_url, path, params)) == str(expected)


@pytest.mark.parametrize("first", [1, True, 1.0, "1"])
def test_equal_parameter_values_of_other_types_are_encoded_as_httpx_does(clients, first) -> None:
    """``1 == True == 1.0`` as keys: the encoded query must still follow each value's type,
    in whatever order the calls come."""
    http = clients["http://kong:8001"]
    for value in (first, 1, True, 1.0, "1", False, 0):
        expected = http.build_request("GET", "/upstreams", params={"size": value}).url
        assert wire.absolute(http.base_url, "/upstreams", {"size": value}) == expected


def test_a_repeated_parameter_set_is_encoded_once(clients, monkeypatch) -> None:
    """A ramp step sends the same ``size``/tag filter on every list read: encoded once."""
    encoded = []
    query_params = httpx.QueryParams
    monkeypatch.setattr(httpx, "QueryParams", lambda p: encoded.append(p) or query_params(p))
    http = clients["http://kong:8001"]
    params = {"tags": "kong-canary-cohorts=encoded-once", "size": 1000}
    urls = {wire.absolute(http.base_url, f"/upstreams/u{i}/targets", params) for i in range(5)}
    assert len(urls) == 5 and encoded == [params]


def _budget_as_it_was(timeout: httpx.Timeout) -> float:
    """The oracle: ``wire._budget`` before it lost its generator expressions."""
    phases = (timeout.connect, timeout.write, timeout.read, timeout.pool)
    if any(p is None for p in phases):
        return float("inf")
    return float(sum(p for p in phases if p is not None))


_PHASE = st.none() | st.floats(min_value=0, max_value=1e6) | st.integers(0, 10**6)


@settings(max_examples=300, deadline=None)
@given(_PHASE, _PHASE, _PHASE, _PHASE)
def test_the_total_budget_is_what_it_was(connect, write, read, pool) -> None:
    timeout = httpx.Timeout(connect=connect, write=write, read=read, pool=pool)
    got, expected = wire._budget(timeout), _budget_as_it_was(timeout)
    assert got == expected and type(got) is type(expected)


def _decode_as_it_was(method: str, path: str, response: httpx.Response, raw: bytes) -> object:
    """The oracle: ``wire.decode`` before it looked the content type up only for errors."""
    import json as json_module

    status = response.status_code
    content_type = response.headers.get("content-type", "")
    if status >= 400:
        raise wire.error_for(method, path, status, content_type, raw)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        raise errors.KongProtocolError(
            f"unexpected redirect to {where}: is admin_url right?",
            status=status,
            method=method,
            path=path,
        )
    if status == 204 or not raw.strip():
        return None
    try:
        return json_module.loads(raw)
    except ValueError:
        problem = (
            "invalid (truncated?) JSON"
            if "json" in content_type
            else f"expected JSON, got {content_type or 'no content type'}"
        )
        raise errors.KongProtocolError(
            f"{problem}: {wire.snippet(raw)!r}", status=status, method=method, path=path
        ) from None


def _decoded(decode, response: httpx.Response, raw: bytes) -> tuple:
    try:
        return ("body", decode("GET", "/upstreams/u", response, raw))
    except errors.KongError as exc:
        return ("error", type(exc), str(exc), exc.status, getattr(exc, "fields", None))


@settings(max_examples=400, deadline=None)
@given(
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 404, 405, 409, 429, 500, 503]),
    content_type=st.sampled_from(
        [None, "application/json", "application/problem+json", "text/html", "text/plain"]
    ),
    raw=st.sampled_from(
        [
            b"",
            b"  ",
            b'{"id": "x"}',
            b'{"message": "not found"}',
            b'{"code": 12, "message": "cannot create", "name": "operation unsupported"}',
            b'{"status": 404, "title": "Not Found", "detail": "no such upstream"}',
            b"<html><body>502 Bad Gateway</body></html>",
            b'{"trunc',
            b"[1, 2]",
        ]
    ),
)
def test_decode_answers_as_it_did(status, content_type, raw) -> None:
    headers = {"location": "http://elsewhere/"} if 300 <= status < 400 else {}
    if content_type is not None:
        headers["content-type"] = content_type
    response = httpx.Response(status, headers=headers, content=raw)
    assert _decoded(wire.decode, response, raw) == _decoded(_decode_as_it_was, response, raw)
