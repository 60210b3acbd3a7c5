"""Every paginated Admin API list, read one way.

Kong's lists (``kong/api/endpoints.lua`` ``get_collection_endpoint``; ``page_size`` and
``offset``, ``kong/db/dao/init.lua``) answer ``{"data": [...], "offset": "…"}`` with ``offset``
absent or null on the last page. Top-level lists refuse a ``size`` above ``max_page_size``
(1000) with 400; nested lists (``/upstreams/{u}/targets``, ``/upstreams/{u}/health``) cap it
silently, and their ``next`` link drops ``size``: so ``size`` is sent with every ``offset``
and ``next`` is never followed. An offset that comes back twice would loop forever: it is a
protocol error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sidecar.kong import parse
from sidecar.kong.errors import KongProtocolError
from sidecar.kong.parse import Call

PAGE_SIZE = 1000  # Kong's max_page_size; larger is a 400 on top-level lists, capped on nested


def collect(
    get: Callable[..., Any],
    call: Call,
    *,
    params: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All items of a list, plus its first page (``/health`` puts ``node_id`` there).

    ``get(params=…)`` sends one GET and returns the decoded body; ``params`` are sent with every
    page (a tag filter, say) besides ``size`` and ``offset``."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    offset: str | None = None
    first: dict[str, Any] | None = None
    while True:
        sent: dict[str, Any] = {**(params or {}), "size": PAGE_SIZE}
        if offset is not None:
            sent["offset"] = offset
        body = get(params=sent)
        page_items, offset = parse.page(body, call)
        first = body if first is None else first
        items.extend(page_items)
        if offset is None:
            return items, first
        if offset in seen:
            raise KongProtocolError(
                f"pagination loop: offset {offset!r} came back twice",
                method=call.method,
                path=call.path,
            )
        seen.add(offset)
