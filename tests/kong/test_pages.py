"""``sidecar.kong.pages.collect``: every list of the Admin API read one way."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.kong.errors import KongProtocolError
from sidecar.kong.pages import PAGE_SIZE, collect
from sidecar.kong.parse import Call


class Pages:
    """Answers pages from a list, remembering what was asked."""

    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies
        self.sent: list[dict[str, Any]] = []

    def __call__(self, *, params: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(params)
        return self.bodies[len(self.sent) - 1]


def test_size_and_the_callers_params_go_with_every_offset() -> None:
    get = Pages(
        [
            {"data": [{"id": "1"}], "offset": "b", "node_id": "n"},
            {"data": [{"id": "2"}], "offset": "c"},
            {"data": [{"id": "3"}], "offset": None},
        ]
    )
    items, first = collect(get, Call("GET", "/upstreams"), params={"tags": "t"})
    assert [i["id"] for i in items] == ["1", "2", "3"]
    assert first["node_id"] == "n"
    assert get.sent == [
        {"tags": "t", "size": PAGE_SIZE},
        {"tags": "t", "size": PAGE_SIZE, "offset": "b"},
        {"tags": "t", "size": PAGE_SIZE, "offset": "c"},
    ]


def test_an_offset_that_comes_back_is_a_protocol_error_not_a_loop() -> None:
    get = Pages([{"data": [], "offset": "a"}, {"data": [], "offset": "a"}])
    with pytest.raises(KongProtocolError, match="came back twice"):
        collect(get, Call("GET", "/clustering/data-planes"))


def test_a_page_without_data_is_a_protocol_error() -> None:
    with pytest.raises(KongProtocolError, match="'data' list"):
        collect(Pages([{"items": []}]), Call("GET", "/services"))
