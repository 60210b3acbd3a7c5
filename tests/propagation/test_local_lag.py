"""The local Kong's simulated cluster: other nodes, data planes and Konnect nodes that see
writes ``lag`` seconds late (``sidecar.kong_local.propagation``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sidecar.kong_local.server import create_wsgi_app
from tests.propagation.conftest import FakeClock, StartCluster

ROOT = Path(__file__).resolve().parents[2]


def _rows(client: httpx.Client) -> dict[str, dict]:
    return {r["target"]: r for r in client.get("/upstreams/orders/health").json()["data"]}


def test_other_nodes_share_the_database_but_not_the_balancer(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("3.9", nodes=2, lag=1.0)
    main, other = (cluster.raw(u) for u in cluster.server.node_urls)
    assert main.get("/").json()["node_id"] != other.get("/").json()["node_id"]
    main.patch("/upstreams/orders/targets/10.0.0.1:80", json={"weight": 60}).raise_for_status()
    main.post("/upstreams/orders/targets", json={"target": "10.0.0.3:80", "weight": 40})
    behind = _rows(other)
    assert behind["10.0.0.1:80"]["weight"] == 60  # read from the shared database
    assert behind["10.0.0.1:80"]["data"]["nodeWeight"] == 100  # the balancer is not rebuilt
    assert behind["10.0.0.3:80"]["health"] == "DNS_ERROR" and "data" not in behind["10.0.0.3:80"]
    assert _rows(main)["10.0.0.3:80"]["data"]["nodeWeight"] == 40
    clock.advance(1.0)
    caught_up = _rows(other)
    assert caught_up["10.0.0.1:80"]["data"]["nodeWeight"] == 60
    assert caught_up["10.0.0.3:80"]["data"]["nodeWeight"] == 40


def test_a_lagging_balancer_still_holds_deleted_targets(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("3.9", nodes=2, lag=1.0)
    main, other = (cluster.raw(u) for u in cluster.server.node_urls)
    main.post("/upstreams/orders/targets", json={"target": "10.0.0.3:80", "weight": 40})
    clock.advance(2)
    main.delete("/upstreams/orders/targets/10.0.0.3:80").raise_for_status()

    def hosts(client: httpx.Client) -> dict[str, int]:
        body = client.get("/upstreams/orders/health?balancer_health=1").json()
        return {
            f"{h['host']}:{h['port']}": h["nodeWeight"] for h in body["data"]["details"]["hosts"]
        }

    assert hosts(other) == {"10.0.0.1:80": 100, "10.0.0.3:80": 40}
    assert set(_rows(other)) == {"10.0.0.1:80"}  # the rows come from the database
    assert hosts(main) == {"10.0.0.1:80": 100}
    clock.advance(1)
    assert hosts(other) == {"10.0.0.1:80": 100}


def test_writes_through_any_node_reach_the_shared_database(start_cluster: StartCluster) -> None:
    cluster = start_cluster("3.9", nodes=2, lag=1.0)
    main, other = (cluster.raw(u) for u in cluster.server.node_urls)
    other.post("/upstreams/orders/targets", json={"target": "10.0.0.4:80"}).raise_for_status()
    assert "10.0.0.4:80" in _rows(main)


def test_a_hybrid_control_plane_lists_its_data_planes(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("hybrid", nodes=2, lag=(0.5, 1.0))
    cp = cluster.raw()
    root = cp.get("/").json()
    assert root["configuration"]["role"] == "control_plane"
    assert root["configuration"]["db_update_frequency"] == 5
    row = cp.get("/upstreams/orders/health").json()["data"][0]
    assert "data" not in row and "health" not in row  # a CP has no balancer

    def hashes() -> list[str]:
        return [d["config_hash"] for d in cp.get("/clustering/data-planes").json()["data"]]

    planes = cp.get("/clustering/data-planes").json()["data"]
    assert {"id", "ip", "hostname", "version", "sync_status", "config_hash", "last_seen"} <= set(
        planes[0]
    )
    old = hashes()
    assert len(set(old)) == 1 and len(old[0]) == 32
    cp.patch("/upstreams/orders/targets/10.0.0.1:80", json={"weight": 5}).raise_for_status()
    assert hashes() == old
    clock.advance(0.5)
    first, second = hashes()
    assert first != old[0] and second == old[0]
    clock.advance(0.5)
    assert hashes() == [first, first]


def test_data_planes_exist_only_on_a_control_plane(start_cluster: StartCluster) -> None:
    assert start_cluster("3.9").raw().get("/clustering/data-planes").status_code == 404


def test_konnect_nodes_trail_the_expected_hash(
    start_cluster: StartCluster, clock: FakeClock
) -> None:
    cluster = start_cluster("konnect", nodes=2, lag=(0.2, 0.8))
    konnect = cluster.raw()

    def state() -> tuple[str, list[str]]:
        expected = konnect.get("/expected-config-hash").json()["expected_hash"]
        return expected, [n["config_hash"] for n in konnect.get("/nodes").json()["items"]]

    before, nodes = state()
    assert nodes == [before, before]
    upstream = konnect.get("/core-entities/upstreams/orders").json()["id"]
    konnect.post(f"/core-entities/upstreams/{upstream}/targets", json={"target": "10.0.0.2:80"})
    after, nodes = state()
    assert after != before and nodes == [before, before]
    clock.advance(0.2)
    assert state()[1] == [after, before]
    clock.advance(0.6)
    assert state()[1] == [after, after]


def test_lag_and_nodes_are_checked() -> None:
    with pytest.raises(ValueError, match="one value per lagging node"):
        create_wsgi_app("3.9", nodes=3, lag=(1.0,))
    with pytest.raises(ValueError, match="at least 1"):
        create_wsgi_app("3.9", nodes=0)
    with pytest.raises(ValueError, match="negative"):
        create_wsgi_app("hybrid", lag=-1)


@pytest.mark.slow
def test_cli_serves_the_other_nodes_with_real_lag() -> None:
    exe = shutil.which("kong-canary")
    cmd = [exe] if exe else [sys.executable, "-m", "sidecar"]
    proc = subprocess.Popen(
        [*cmd, "kong-local", "--bind", "127.0.0.1:0", "--nodes", "2", "--propagation-lag", "0.3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        main = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        others = proc.stdout.readline()
        assert main and "0.3 s behind" in others, others
        other = re.search(r"http://127\.0\.0\.1:\d+", others)
        assert other
        with httpx.Client(timeout=5) as http:
            http.patch(
                f"{main.group(0)}/upstreams/orders/targets/127.0.0.1:9111", json={"weight": 7}
            ).raise_for_status()
            health = f"{other.group(0)}/upstreams/orders/health"
            weights = {
                r["target"]: r["data"]["nodeWeight"] for r in http.get(health).json()["data"]
            }
            assert weights["127.0.0.1:9111"] != 7
            time.sleep(0.35)
            weights = {
                r["target"]: r["data"]["nodeWeight"] for r in http.get(health).json()["data"]
            }
            assert weights["127.0.0.1:9111"] == 7
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
