"""Kong's route tables as ``werkzeug.routing`` maps, answering with Kong's 404 and 405 bodies.

Paths are matched with their empty segments dropped (``/upstreams//orders/`` is
``/upstreams/orders``, as the hand-written routers before had it), so there is never a slash to
merge or a trailing one to redirect for. A route given without methods takes every method: its
handler answers 405 itself, after the 404s Kong gives first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, MapAdapter, Rule

from sidecar.kong_local.errors import method_not_allowed, not_found

Route = tuple[str, str] | tuple[str, str, Sequence[str]]  # (path, endpoint[, methods])


def route_table(routes: Iterable[Route]) -> MapAdapter:
    rules = [Rule(r[0], endpoint=r[1], methods=r[2] if len(r) > 2 else None) for r in routes]
    return Map(rules, strict_slashes=False, merge_slashes=False).bind("kong.local")


def match(table: MapAdapter, segments: Sequence[str], method: str) -> tuple[str, dict[str, str]]:
    """(endpoint, path values), or Kong's 404 / 405 raised as ``ApiError``."""
    try:
        endpoint, values = table.match("/" + "/".join(segments), method)
    except MethodNotAllowed:
        raise method_not_allowed() from None
    except NotFound:
        raise not_found() from None
    return str(endpoint), values
