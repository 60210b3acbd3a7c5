"""The helpers every router of the local Kong shares: finding an entity by a path segment
(``schemas.find_by_endpoint_key``) and keyset paging (``store.page_after_offset``)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from sidecar.kong_local.schemas import find_by_endpoint_key
from sidecar.kong_local.store import page_after_offset

NAMES = st.sampled_from(["orders", "svc", "a", "b", "ORDERS"])


@st.composite
def tables(draw: st.DrawFn) -> dict[str, dict[str, object]]:
    ids = draw(st.lists(st.uuids(), unique=True, max_size=8))
    return {str(i): {"id": str(i), "name": draw(st.none() | NAMES)} for i in ids}


@given(rows=tables(), key=NAMES, upper=st.booleans())
def test_a_uuid_names_the_id_anything_else_the_endpoint_key(
    rows: dict[str, dict[str, object]], key: str, upper: bool
) -> None:
    """``kong/api/endpoints.lua``: a UUID segment (any case) selects by id, else by the
    schema's endpoint key, the first match; an entity without one is found by id only."""
    for row_id, row in rows.items():
        assert find_by_endpoint_key(rows, row_id.upper() if upper else row_id, "name") is row
    by_name = [r for r in rows.values() if r["name"] == key]
    assert find_by_endpoint_key(rows, key, "name") is (by_name[0] if by_name else None)
    assert find_by_endpoint_key(rows, key, None) is None
    assert find_by_endpoint_key(rows, str(uuid.uuid4()), "name") is None


@given(rows=tables(), size=st.integers(min_value=1, max_value=10))
def test_walking_the_offsets_returns_every_row_once_in_id_order(
    rows: dict[str, dict[str, object]], size: int
) -> None:
    ordered = sorted(rows.values(), key=lambda r: str(r["id"]))
    seen: list[dict[str, object]] = []
    offset: str | None = None
    for _ in range(len(ordered) + 1):
        page, offset = page_after_offset(ordered, offset, size)
        assert len(page) <= size
        seen += page
        if offset is None:
            break
    assert seen == ordered
