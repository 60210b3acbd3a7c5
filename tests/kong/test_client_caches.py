"""The Kong client's per-call caches give what the uncached code gave: a path segment is
``quote(value, safe=":")`` whatever was quoted before, and Konnect is recognised from the
client's base URL as it is now, not as it was when first asked."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.kong.client import KongAdmin, _segment
from sidecar.kong.models import Flavour

KONNECT_URL = "https://eu.api.konghq.com/v2/control-planes/cp-1/core-entities"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=12))
def test_a_cached_segment_is_what_quote_gives(values: list[str]) -> None:
    for value in values + values[::-1]:  # each value again, after others were cached
        assert _segment(value) == quote(value, safe=":")


def test_konnect_is_recognised_from_the_base_url_in_use() -> None:
    http = httpx.Client(base_url="http://kong:8001")
    admin = KongAdmin(http)
    assert not admin._is_konnect()
    http.base_url = httpx.URL(KONNECT_URL)  # a new URL instance: asked again
    assert admin._is_konnect()
    http.base_url = httpx.URL("http://kong:8001/gateway/")
    assert not admin._is_konnect()
    http.close()


def test_an_explicit_flavour_decides_whatever_the_url() -> None:
    http = httpx.Client(base_url=KONNECT_URL)
    assert not KongAdmin(http, flavour=Flavour.KONG_3)._is_konnect()
    assert KongAdmin(http, flavour=Flavour.KONNECT)._is_konnect()
    http.close()
