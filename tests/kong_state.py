"""What a Kong holds, read whole, and what someone else's Kong might already hold.

The real-Kong half of the suite (``KONG_ADMIN_URL``) runs on a Kong that other people use,
so it must leave it as it found it and must not mind their entities. ``snapshot`` reads every
entity kind the sidecar or a test creates (upstreams with their targets, services, routes,
plugins, consumers with their ACL groups), every page of each (``sidecar.kong.pages``), so a
run can be compared before and after. ``seed_unrelated`` puts the kind of things a shared
Kong holds there first: more upstreams than one default page (Kong's ``page_size`` default is
100, ``kong/db/dao/init.lua``), names the suite might pick for itself, a service with a route
and plugins (someone's ``post-function`` on that service: a global one would refuse every
cohort by design, ``skip_if_global_post_function``), a global plugin, a consumer in an ACL
group, and an upstream on which another sidecar runs a guarded canary under a lease (which a
test must never roll back).

``python -m tests.kong_state seed|snapshot URL`` and ``compare BEFORE AFTER`` do the same from
a shell (``scripts/test-real-kong``), with ``KONG_ADMIN_TOKEN`` and ``KONG_WORKSPACE`` honoured
as the suite honours them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import httpx

from sidecar.core.guard_config import GuardConfig
from sidecar.core.guard_tags import guard_tag
from sidecar.core.lease import read_marks
from sidecar.core.tags import LEASE_TAG, MANAGED_TAG, VARIANT_TAG_PREFIX
from sidecar.kong.http import build_http_client
from sidecar.kong.pages import collect
from sidecar.kong.parse import Call
from sidecar.settings import KongSettings

SEED_TAG = "kong-canary-suite-seed"  # marks what seed_unrelated made (not ours to the sidecar)
UNRELATED_UPSTREAMS = 105  # one more page than Kong's default page_size (100)
OTHER_CANARY = "someone-elses-canary"
# Armed to trip when its canary gets no traffic: the guard most ready to roll it back.
OTHER_GUARD = guard_tag(GuardConfig(trip_on_no_traffic=True, no_traffic_seconds=30), None, "theirs")
# Names the suite once hard-coded for its own upstreams: on a shared Kong a fixed name clashes.
TAKEN_NAMES = ("payments-ramp",)
NON_STABLE_VARIANT_TAGS = {f"{VARIANT_TAG_PREFIX}baseline", f"{VARIANT_TAG_PREFIX}canary"}
TOP_LEVEL = ("upstreams", "services", "routes", "plugins", "consumers")


def settings_from_env(url: str) -> KongSettings:
    """The Kong the suite's real-Kong cases use, with the same optional credentials."""
    return KongSettings(
        admin_url=url,
        admin_token=os.environ.get("KONG_ADMIN_TOKEN") or None,
        workspace=os.environ.get("KONG_WORKSPACE") or None,
    )


def every_item(
    kong: httpx.Client, path: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every item of an Admin API list, all pages (a Kong may hold more than one page)."""

    def get(params: dict[str, Any]) -> Any:
        answer = kong.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    return collect(get, Call("GET", path), params=params)[0]


def _by_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["id"])


def snapshot(kong: httpx.Client) -> dict[str, Any]:
    """Every entity the suite could create or change, as Kong returns it, in a stable order."""
    state: dict[str, Any] = {kind: _by_id(every_item(kong, f"/{kind}")) for kind in TOP_LEVEL}
    state["targets"] = {
        upstream["id"]: _by_id(every_item(kong, f"/upstreams/{upstream['id']}/targets"))
        for upstream in state["upstreams"]
    }
    # /acls is the acl plugin's own endpoint: absent when a Kong runs without that plugin
    acls = kong.get("/acls", params={"size": 1})
    state["acls"] = _by_id(every_item(kong, "/acls")) if acls.status_code == 200 else None
    return state


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per entity that appeared, disappeared or changed between two snapshots."""
    lines: list[str] = []
    for kind in (*TOP_LEVEL, "acls"):
        was = {e["id"]: e for e in before.get(kind) or []}
        now = {e["id"]: e for e in after.get(kind) or []}
        lines += _compare(kind, was, now)
    upstream_ids = set(before["targets"]) | set(after["targets"])
    for upstream_id in sorted(upstream_ids):
        was = {t["id"]: t for t in before["targets"].get(upstream_id, [])}
        now = {t["id"]: t for t in after["targets"].get(upstream_id, [])}
        lines += _compare(f"targets of upstream {upstream_id}", was, now)
    return lines


def _label(entity: dict[str, Any]) -> str:
    name = entity.get("name") or entity.get("username") or entity.get("target")
    name = name or entity.get("group")
    return f"{entity['id']} ({name})" if name else entity["id"]


def _compare(kind: str, was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    lines = [f"{kind}: left behind {_label(now[i])}" for i in sorted(now.keys() - was.keys())]
    lines += [f"{kind}: removed {_label(was[i])}" for i in sorted(was.keys() - now.keys())]
    lines += [
        f"{kind}: changed {_label(now[i])}: {json.dumps(was[i], sort_keys=True)} -> "
        f"{json.dumps(now[i], sort_keys=True)}"
        for i in sorted(was.keys() & now.keys())
        if was[i] != now[i]
    ]
    return lines


def _made(answer: httpx.Response) -> dict[str, Any]:
    if answer.status_code != 201:
        raise RuntimeError(
            f"seeding {answer.request.method} {answer.request.url.path} answered "
            f"{answer.status_code}: {answer.text[:300]}"
        )
    return answer.json()


def other_canaries(kong: httpx.Client, mine: str) -> list[str]:
    """Upstreams besides ``mine`` that some sidecar runs a canary on in this Kong: managed
    (``managed-by=kong-canary``) and leased, ramped or with weight on a baseline or canary
    target. A rollback would change them, so a test must not roll back every upstream."""
    found = []
    for upstream in every_item(kong, "/upstreams", {"tags": MANAGED_TAG}):
        if upstream["name"] == mine:
            continue
        marks = read_marks(upstream.get("tags") or [])
        targets = every_item(kong, f"/upstreams/{upstream['id']}/targets")
        off_stable = any(
            t["weight"] > 0 and set(t.get("tags") or []) & NON_STABLE_VARIANT_TAGS for t in targets
        )
        if marks.lease_until is not None or marks.ramp is not None or off_stable:
            found.append(upstream["name"])
    return found


def seed_unrelated(kong: httpx.Client, now: float | None = None) -> None:
    """Fill a Kong with entities that are not the suite's; refuses to seed twice."""
    if any(SEED_TAG in (u.get("tags") or []) for u in every_item(kong, "/upstreams")):
        raise RuntimeError(f"this Kong already holds entities tagged {SEED_TAG}")
    tags = [SEED_TAG]
    names = [*(f"unrelated-{n:03d}" for n in range(UNRELATED_UPSTREAMS)), *TAKEN_NAMES]
    for n, name in enumerate(names):
        _made(kong.post("/upstreams", json={"name": name, "tags": tags}))
        target = {"target": f"10.9.{n // 250}.{n % 250 + 1}:80", "weight": 100, "tags": tags}
        _made(kong.post(f"/upstreams/{name}/targets", json=target))
    lease_until = int((time.time() if now is None else now) + 3600)
    _made(
        kong.post(
            "/upstreams",
            json={
                "name": OTHER_CANARY,
                "tags": [*tags, MANAGED_TAG, f"{LEASE_TAG}{lease_until}", OTHER_GUARD],
            },
        )
    )
    for target, weight, variant in (("10.8.0.1:80", 90, "stable"), ("10.8.0.3:80", 10, "canary")):
        body = {
            "target": target,
            "weight": weight,
            "tags": [*tags, MANAGED_TAG, f"{VARIANT_TAG_PREFIX}{variant}"],
        }
        _made(kong.post(f"/upstreams/{OTHER_CANARY}/targets", json=body))
    service_body = {"name": "unrelated-svc", "host": "unrelated-000", "tags": tags}
    service = _made(kong.post("/services", json=service_body))
    _made(
        kong.post(
            f"/services/{service['id']}/routes",
            json={"name": "unrelated-route", "paths": ["/unrelated"], "tags": tags},
        )
    )
    http_log = {"http_endpoint": "http://127.0.0.1:9/log"}
    _made(
        kong.post(
            f"/services/{service['id']}/plugins",
            json={"name": "http-log", "config": http_log, "tags": tags},
        )
    )
    _made(kong.post("/plugins", json={"name": "prometheus", "tags": tags}))
    post_function = {"access": ["kong.log.debug('someone else')"]}
    _made(
        kong.post(
            f"/services/{service['id']}/plugins",
            json={"name": "post-function", "config": post_function, "tags": tags},
        )
    )
    consumer = _made(kong.post("/consumers", json={"username": "unrelated-user", "tags": tags}))
    _made(kong.post(f"/consumers/{consumer['id']}/acls", json={"group": "unrelated-group"}))


def main(argv: list[str]) -> int:
    """``seed URL``, ``snapshot URL`` (JSON on stdout), or ``compare BEFORE AFTER`` (two
    snapshot files: each difference on stderr, exit 1 if there is any)."""
    if len(argv) == 3 and argv[0] == "compare":
        with open(argv[1]) as before, open(argv[2]) as after:
            lines = differences(json.load(before), json.load(after))
        for line in lines:
            print(line, file=sys.stderr)
        return 1 if lines else 0
    if len(argv) != 2 or argv[0] not in ("seed", "snapshot"):
        print(
            "usage: python -m tests.kong_state seed|snapshot KONG_ADMIN_URL\n"
            "       python -m tests.kong_state compare BEFORE.json AFTER.json",
            file=sys.stderr,
        )
        return 2
    command, url = argv
    with build_http_client(settings_from_env(url)) as kong:
        if command == "seed":
            seed_unrelated(kong)
        else:
            json.dump(snapshot(kong), sys.stdout, sort_keys=True)
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
