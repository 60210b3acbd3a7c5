"""query_range's answers that are not Prometheus's JSON: a clear PrometheusQueryError."""

from __future__ import annotations

import httpx
import pytest

from sidecar.kayenta.prometheus import PrometheusQueryError, query_range, query_sum

HTML_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def _client(status: int, body: str, content_type: str) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body, headers={"Content-Type": content_type})

    return httpx.Client(base_url="http://prometheus.test", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "body", "content_type", "says"),
    [
        (502, HTML_502, "text/html", "502: not JSON (<html>"),
        (200, "", "application/json", "200: not JSON"),
        (200, "[1, 2]", "application/json", "200: not a JSON object"),
        (400, '{"status": "error", "error": "parse error"}', "application/json", "parse error"),
    ],
)
def test_query_range_should_raise_its_own_error_when_the_answer_is_not_a_result(
    status: int, body: str, content_type: str, says: str
) -> None:
    with _client(status, body, content_type) as client, pytest.raises(PrometheusQueryError) as err:
        query_range(client, "up", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 60)
    assert says in str(err.value)
    assert str(err.value).endswith("for up")


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ('{"status": "success", "data": {"resultType": "vector", "result": []}}', 0.0),
        (
            '{"status": "success", "data": {"resultType": "vector", '
            '"result": [{"metric": {}, "value": [1796438598.6, "985"]}]}}',
            985.0,
        ),
    ],
)
def test_query_sum_reads_one_sample_and_no_series_as_zero(body: str, value: float) -> None:
    with _client(200, body, "application/json") as client:
        assert query_sum(client, "sum(up)") == value


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (502, HTML_502, "502: not JSON"),
        (200, '{"status": "success", "data": {"result": [{"metric": {}}]}}', "not one vector"),
    ],
)
def test_query_sum_should_raise_its_own_error_on_other_answers(
    status: int, body: str, says: str
) -> None:
    with (
        _client(status, body, "application/json") as client,
        pytest.raises(PrometheusQueryError) as err,
    ):
        query_sum(client, "sum(up)")
    assert says in str(err.value) and str(err.value).endswith("for sum(up)")
