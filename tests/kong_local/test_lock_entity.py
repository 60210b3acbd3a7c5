"""The entity the upstream lock uses (``sidecar.core.upstream_lock``): an upstream whose create
is the acquire. The local server must behave as Kong does for it: of concurrent creates of one
name exactly one wins, the others get 409 ``unique constraint violation`` (code 5) with the
body the recordings show on 2.8.5/3.4.2/3.9.3 ("create same upstream again"), Konnect a
problem+json 409; a delete by id removes only that incarnation."""

from __future__ import annotations

import threading

import httpx
import pytest

from sidecar.core.upstream_lock import lock_name

NAME = lock_name("orders")


def _concurrent_creates(client: httpx.Client, path: str, n: int) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    start = threading.Barrier(n)
    guard = threading.Lock()

    def create() -> None:
        start.wait(5)
        r = client.post(path, json={"name": NAME, "tags": ["kong-canary-lock"]})
        with guard:
            answers.append(r)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return answers


@pytest.mark.parametrize("profile", ["2.8", "3.4", "3.9"])
def test_one_create_wins_the_others_get_kongs_unique_violation(start_kong, profile) -> None:
    server = start_kong(profile)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answers = _concurrent_creates(client, "/upstreams", 8)
        assert sorted(r.status_code for r in answers) == [201] + [409] * 7
        lost = next(r for r in answers if r.status_code == 409).json()
        assert lost == {
            "code": 5,
            "name": "unique constraint violation",
            "message": f"UNIQUE violation detected on '{{name=\"{NAME}\"}}'",
            "fields": {"name": NAME},
        }
        first = next(r for r in answers if r.status_code == 201).json()
        again = client.post("/upstreams", json={"name": NAME})  # after a delete by id: free
        assert again.status_code == 409
        assert client.delete(f"/upstreams/{first['id']}").status_code == 204
        second = client.post("/upstreams", json={"name": NAME})
        assert second.status_code == 201
        # the first incarnation's id is gone: deleting it again leaves the second alone
        assert client.delete(f"/upstreams/{first['id']}").status_code in (204, 404)
        assert client.get(f"/upstreams/{NAME}").json()["id"] == second.json()["id"]


def test_konnect_answers_a_taken_name_with_a_problem_409(start_kong) -> None:
    server = start_kong("konnect", konnect_token="kpat_test", control_plane_id="cp-1")
    headers = {"Authorization": "Bearer kpat_test"}
    with httpx.Client(base_url=server.admin_url, headers=headers, timeout=10) as client:
        answers = _concurrent_creates(client, "/core-entities/upstreams", 6)
        assert sorted(r.status_code for r in answers) == [201] + [409] * 5
        lost = next(r for r in answers if r.status_code == 409)
        assert lost.headers["Content-Type"].startswith("application/problem+json")
        assert lost.json()["status"] == 409
