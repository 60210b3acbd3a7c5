"""Issue 13 item 1, end to end: two sidecar replicas of two gunicorn workers each, the local
Kong in a process of its own, and clients hammering one upstream with mixed splits (three
different target sets), ramps (driven by their status polls), rollbacks and one-second leases
that the four lease sweepers expire. In rounds of concurrent requests; after each round,
with the upstream's lock held by the test (so no sweep is halfway), Kong must be at one of
the requested states, equal to what one of the round's 200 answers said (or stable, from a
rollback or a sweep), with canary = baseline, and no request may fail with 5xx other than
``upstream_busy``."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.settings import KongSettings
from sidecar.upstream_locks import KongLocks
from tests.cli.sidecar_process import free_port, wait_until
from tests.cli.sidecar_process import process as sidecar_process

pytestmark = pytest.mark.slow
TOKEN = "lock-test-token-0123456789"
UPSTREAM = "orders"
STABLE = "10.0.0.1:80"
BODIES = (  # three target sets, as in the reproduction
    {
        "split": {"stable": 90, "baseline": 5, "canary": 5},
        "targets": {"baseline": ["10.0.0.2:80"], "canary": ["10.0.0.3:80"]},
    },
    {
        "split": {"stable": 80, "baseline": 10, "canary": 10},
        "targets": {"baseline": ["10.0.0.4:80"], "canary": ["10.0.0.5:80", "10.0.0.6:80"]},
    },
    {
        "split": {"stable": 95, "baseline": 2.5, "canary": 2.5},
        "targets": {"baseline": ["10.0.0.7:80", "10.0.0.8:80"], "canary": ["10.0.0.9:80"]},
    },
)
RAMP = {
    "schedule": [
        {"stable": 96, "baseline": 2, "canary": 2},
        {"stable": 90, "baseline": 5, "canary": 5},
    ],
    "interval": 1,
    "targets": BODIES[1]["targets"],
}
# Bounded: rounds until WANTED requests, or until ROUND_SECONDS have passed (a loaded CI
# machine gets fewer rounds, each checked all the same; ~1,000 in ~30 s on an idle 2-core one).
WANTED = 1000
ROUND_SECONDS = 45.0
ENOUGH = 200  # fewer would not have exercised the races
ROUND_SIZE = 16
STABLE_ONLY = {
    "split": {"stable": 100.0, "baseline": 0.0, "canary": 0.0},
    "members": {"stable": [STABLE], "baseline": [], "canary": []},
}


def requested_states() -> list[dict[str, Any]]:
    """(split, non-zero members per variant) of everything a client may ask for."""
    states = [{"split": b["split"], "targets": b["targets"]} for b in BODIES]
    states += [{"split": s, "targets": RAMP["targets"]} for s in RAMP["schedule"]]
    return states


def configuration(weights: dict[str, int], variants: dict[str, str]) -> dict[str, Any]:
    """Kong's state as the split it gives and who carries it."""
    totals = {"stable": 0, "baseline": 0, "canary": 0}
    members: dict[str, list[str]] = {"stable": [], "baseline": [], "canary": []}
    for target, weight in weights.items():
        variant = variants[target]
        totals[variant] += weight
        if weight:
            members[variant].append(target)
    whole = sum(totals.values())
    split = {v: round(100 * t / whole, 2) for v, t in totals.items()} if whole else None
    return {"split": split, "members": {v: sorted(m) for v, m in members.items()}}


def is_requested(config: dict[str, Any]) -> bool:
    if config["split"] == STABLE_ONLY["split"]:
        return config == STABLE_ONLY
    for state in requested_states():
        if config["split"] == {v: float(p) for v, p in state["split"].items()} and all(
            config["members"][v] == sorted(state["targets"][v]) for v in ("baseline", "canary")
        ):
            return config["members"]["stable"] == [STABLE]
    return False


def answer_config(answer: dict[str, Any]) -> dict[str, Any]:
    weights = {t["target"]: t["weight"] for t in answer["targets"] if t["variant"]}
    variants = {t["target"]: t["variant"] for t in answer["targets"] if t["variant"]}
    return configuration(weights, variants)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``python -m sidecar …`` with its output in a file: a pipe nobody reads would fill up
    (64 KiB) and block the process mid-request."""
    with (
        log.open("wb") as out,
        sidecar_process(args, env, stdout=out, stderr=subprocess.STDOUT) as proc,
    ):
        yield proc


@contextmanager
def local_kong(tmp: Path) -> Iterator[str]:
    seed = {"upstreams": [{"name": UPSTREAM, "targets": [{"target": STABLE, "weight": 100}]}]}
    seed_file = tmp / "seed.json"
    seed_file.write_text(json.dumps(seed))
    port = free_port()
    args = ["kong-local", "--bind", f"127.0.0.1:{port}", "--seed", str(seed_file), "--quiet"]
    with process(args, {}, tmp / "kong.log"):
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/", timeout=2).status_code == 200, 30, "local Kong")
        yield url


@contextmanager
def replica(kong_url: str, log: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "KONG_CANARY_TOKENS": f"spinnaker:admin={TOKEN}",
        "KONG_CANARY_LOG_LEVEL": "error",
        "KONG_CANARY_RAMP_SECRET": "lock-test-ramp-secret-0123456789",
        "KONG_CANARY_LEASE_CHECK_INTERVAL": "1",
        "KONG_CANARY_PUBLIC_URL": url,
    }
    args = ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    with process([*args, "--kong-admin-url", kong_url], env, log):
        wait_until(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, 60, "replica")
        yield url


class Clients:
    """Keep-alive clients to both replicas; each request goes to a random one, and gunicorn
    spreads them over its two workers."""

    def __init__(self, urls: list[str]) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self.http = [httpx.Client(base_url=u, headers=headers, timeout=60) for u in urls]
        self.random = random.Random(13)
        self.ramps: list[str] = []

    def any(self) -> httpx.Client:
        return self.random.choice(self.http)

    def close(self) -> None:
        for client in self.http:
            client.close()


def operation(clients: Clients, kind: str, pick: int) -> tuple[str, httpx.Response]:
    client = clients.any()
    path = f"/v1/upstreams/{UPSTREAM}"
    if kind == "split":
        return kind, client.put(f"{path}/split", json=BODIES[pick % 3])
    if kind == "short-lease":  # the sweepers take it back after a second
        return kind, client.put(f"{path}/split", json={**BODIES[pick % 3], "lease": 1})
    if kind == "rollback":
        return kind, client.post(f"{path}/rollback")
    if kind == "expect":  # compare-and-set from a split some client may have set
        expect = BODIES[(pick + 1) % 3]["split"]
        return kind, client.put(f"{path}/split", json={**BODIES[pick % 3], "expect": expect})
    if kind == "ramp":
        started = client.post(f"{path}/ramps", json=RAMP)
        if started.status_code != 202:
            return kind, started
        clients.ramps.append(started.json()["id"])
        return kind, started
    if kind == "ramp-poll":  # Orca's poll: moves a ramp that still owns the upstream on
        ramp = clients.ramps[pick % len(clients.ramps)] if clients.ramps else "none"
        return kind, client.get(f"/v1/ramps/{ramp}")
    raise AssertionError(kind)


KINDS = ("split",) * 5 + ("short-lease", "rollback", "ramp") + ("expect",) * 2 + ("ramp-poll",) * 3


def kong_state(admin: KongAdmin) -> dict[str, Any]:
    targets = admin.targets(UPSTREAM)
    variants = {}
    for t in targets:
        tagged = [tag[len("variant=") :] for tag in t.tags if tag.startswith("variant=")]
        variants[t.target] = tagged[0] if tagged else "stable"
    return configuration({t.target: t.weight for t in targets}, variants)


def test_two_replicas_of_two_workers_change_one_upstream_one_at_a_time(tmp_path: Path) -> None:
    with ExitStack() as stack:
        kong_url = stack.enter_context(local_kong(tmp_path))
        urls = [stack.enter_context(replica(kong_url, tmp_path / f"r{i}.log")) for i in range(2)]
        clients = Clients(urls)
        stack.callback(clients.close)
        admin = KongAdmin(build_http_client(KongSettings(admin_url=kong_url)))
        stack.callback(admin.close)
        observer = KongLocks(admin, wait=30.0)  # a third party taking the lock to look
        pool = stack.enter_context(ThreadPoolExecutor(ROUND_SIZE))
        rng = random.Random(7)
        requests = rounds = 0
        statuses: dict[int, int] = {}
        stop_at = time.monotonic() + ROUND_SECONDS
        while requests < WANTED and time.monotonic() < stop_at:
            kinds = [rng.choice(KINDS) for _ in range(ROUND_SIZE)]
            futures = [pool.submit(operation, clients, k, rng.randrange(30)) for k in kinds]
            answers = [f.result() for f in futures]
            rounds += 1
            requests += len(answers)
            ok_configs = []
            for kind, response in answers:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                body = response.json()
                if response.status_code >= 500:
                    assert body["error"]["code"] == "upstream_busy", (kind, body)
                if response.status_code == 200 and kind in (
                    "split",
                    "short-lease",
                    "rollback",
                    "expect",
                ):
                    config = answer_config(body)
                    assert is_requested(config), (kind, body)  # what the answer says is asked
                    ok_configs.append(config)
            with observer.held(UPSTREAM):  # no change (and no sweep) is halfway now
                now = kong_state(admin)
            assert is_requested(now), f"round {rounds}: Kong at a state nobody asked for: {now}"
            assert now["split"] is None or now["split"]["canary"] == now["split"]["baseline"]
            if ok_configs and not any(k == "ramp-poll" for k, _ in answers):
                # the last change answered 200 is what Kong shows, unless a sweep came later
                assert now in ok_configs or now == STABLE_ONLY, f"round {rounds}: Kong {now}"
        print(f"{requests} requests in {rounds} rounds: {statuses}")
        assert requests >= ENOUGH, f"only {requests} requests in {rounds} rounds: {statuses}"
        assert statuses.get(200, 0) > requests / 4, statuses
