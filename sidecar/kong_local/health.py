"""What ``/upstreams/{u}/health`` shows: the node's balancer view of each target.

Sources: ``kong/db/dao/targets.lua`` ``page_for_upstream_with_health`` (DNS_ERROR when a target
has no address; target health = HEALTHY if any address is, else UNHEALTHY if any is), 3.x
``kong/runloop/balancer/healthcheckers.lua`` (weight 0 and checks off -> HEALTHCHECKS_OFF) and
the recordings (``data`` layout, ``dns: "A"`` for IP targets). Hostnames resolve through the
injected ``dns`` map only, never the real resolver, so results are deterministic; each
address carries the target's full weight ([DOCS] 2.8 loadbalancing.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sidecar.kong_local.addresses import normalize_ip
from sidecar.kong_local.schemas import Body, healthchecks_enabled
from sidecar.kong_local.store import Workspace

DnsMap = Mapping[str, Sequence[str]]


def resolve(host_type: str, host: str, dns: DnsMap) -> tuple[str, list[str]]:
    """(record type, addresses). IP literals resolve to themselves."""
    if host_type == "ipv4":
        return "A", [host]
    if host_type == "ipv6":
        return "AAAA", [host]
    if host in dns:
        ips = list(dns[host])
        return ("AAAA" if ips and ":" in ips[0] else "A"), ips
    if host.lower() == "localhost":
        return "A", ["127.0.0.1"]
    return "A", []


def target_data(ws: Workspace, upstream: Body, target: Body, dns: DnsMap) -> Body:
    p = normalize_ip(target["target"])
    assert p is not None and p.port is not None  # stored targets are normalised
    dns_type, ips = resolve(p.type, p.host, dns)
    checks_on = healthchecks_enabled(upstream)
    weight = target["weight"]
    whole = ws.overrides.get((target["id"], None))
    addresses: list[Body] = []
    available = 0
    for ip in ips:
        shown_ip = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
        override = ws.overrides.get((target["id"], f"{shown_ip}:{p.port}"), whole)
        if weight == 0:
            health = "HEALTHCHECKS_OFF"
        elif override is not None:
            health = override
        else:
            health = "HEALTHY" if checks_on else "HEALTHCHECKS_OFF"
        if health != "UNHEALTHY":
            available += weight
        addresses.append({"ip": ip, "port": p.port, "weight": weight, "health": health})
    total = weight * len(ips)
    host = f"[{p.host}]" if p.type == "ipv6" else p.host
    return {
        "host": host,
        "port": p.port,
        "dns": dns_type,
        "nodeWeight": weight,
        "weight": {"total": total, "available": available, "unavailable": total - available},
        "addresses": addresses,
    }


def target_health(data: Body) -> str:
    if not data["addresses"]:
        return "DNS_ERROR"
    states = {a["health"] for a in data["addresses"]}
    if "HEALTHY" in states:
        return "HEALTHY"
    if "UNHEALTHY" in states:
        return "UNHEALTHY"
    return "HEALTHCHECKS_OFF"


def balancer_health(
    ws: Workspace, upstream: Body, targets: list[Body], dns: DnsMap, *, with_field: bool
) -> dict[str, Any]:
    """``?balancer_health=1``: healthy when available weight meets ``healthchecks.threshold``.

    3.x ``details`` is the balancer's ``getStatus()``: totals and ``hosts``, one
    ``getTargetStatus`` per target the balancer holds (``kong/runloop/balancer/balancers.lua``).
    """
    total = available = 0
    hosts = []
    for target in targets:
        data = target_data(ws, upstream, target, dns)
        total += data["weight"]["total"]
        available += data["weight"]["available"]
        hosts.append(data)
    threshold = upstream["healthchecks"]["threshold"]
    healthy = available * 100 >= threshold * total and (total > 0 or threshold == 0)
    measured = "HEALTHY" if healthy else "UNHEALTHY"
    out: dict[str, Any] = {
        "id": upstream["id"],
        "health": measured if healthchecks_enabled(upstream) else "HEALTHCHECKS_OFF",
    }
    if with_field:
        out["balancer_health"] = measured
        out["details"] = {
            "healthy": healthy,
            "weight": {"total": total, "available": available, "unavailable": total - available},
            "hosts": hosts,
        }
    return out
