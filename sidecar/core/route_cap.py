"""Which ``route`` label a gateway series gets: the cardinality cap, as a pure decision.

Each upstream may name at most ``cap`` routes in the ``route`` label of the
``kong_canary_gateway_*`` series (``GATEWAY_MAX_ROUTES``); routes are admitted in the order
they are first seen and stay admitted for the life of the process, so an admitted route's
series never changes label halfway through a canary. Entries of any later route are counted
under ``OVERFLOW`` (``route="other"``): never dropped, so the service-level sums (which sum
over the label) stay exact. ``""`` (an entry no route matched) is not a route and never
counts against the cap. A Kong route that is itself named ``other`` shares the overflow's
label; its own figures are then the overflow's too (the overflow counter says how many
entries were not its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Set

OVERFLOW = "other"
NO_ROUTE = ""


def route_labels(
    admitted: Set[str], routes: Iterable[str], cap: int
) -> tuple[dict[str, str], list[str]]:
    """``(label of each route, routes newly admitted)`` given the routes already admitted.

    A route already admitted, or ``""``, keeps its own name; a new one is admitted while
    fewer than ``cap`` are; any other gets ``OVERFLOW``. Pure: the caller keeps the set."""
    labels: dict[str, str] = {}
    new: list[str] = []
    room = cap - len(admitted)
    for route in routes:
        if route in labels:
            continue
        if route == NO_ROUTE or route in admitted:
            labels[route] = route
        elif room > 0:
            labels[route] = route
            new.append(route)
            room -= 1
        else:
            labels[route] = OVERFLOW
    return labels, new
