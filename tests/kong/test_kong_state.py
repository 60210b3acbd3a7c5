"""The real-Kong harness's own tools (``tests.kong_state``), checked on the local server:
a snapshot sees every page and every change, the seed holds what a shared Kong holds, and
another sidecar's live canary is recognised (the suite's sweeps must leave it alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.kong_local.server import serve_in_thread
from tests.api.test_cohorts import _page
from tests.kong_state import (
    OTHER_CANARY,
    SEED_TAG,
    TAKEN_NAMES,
    UNRELATED_UPSTREAMS,
    differences,
    main,
    other_canaries,
    seed_unrelated,
    snapshot,
)

MORE_THAN_A_PAGE = 1001  # Kong's max_page_size is 1000


@pytest.fixture(params=["2.8", "3.4", "3.9"])
def kong(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    with (
        serve_in_thread(request.param, seed={"upstreams": []}) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def test_lists_are_read_past_the_first_page():
    """Before, the cohort suite's ``_page`` read one page of 1000: a shadow upstream on a
    later page of a big shared Kong was never seen, so "no cohort entity left" passed."""
    upstreams = [{"name": f"u-{n:04d}", "targets": []} for n in range(MORE_THAN_A_PAGE)]
    with (
        serve_in_thread("3.9", seed={"upstreams": upstreams}) as server,
        httpx.Client(base_url=server.url, timeout=10) as kong,
    ):
        assert len(_page(kong, "/upstreams")) == MORE_THAN_A_PAGE
        assert len(snapshot(kong)["upstreams"]) == MORE_THAN_A_PAGE


def test_the_seed_holds_what_a_shared_kong_holds(kong):
    seed_unrelated(kong, now=1_796_000_000)
    state = snapshot(kong)
    names = {u["name"] for u in state["upstreams"]}
    assert len(names) == UNRELATED_UPSTREAMS + len(TAKEN_NAMES) + 1
    assert {OTHER_CANARY, *TAKEN_NAMES} <= names
    assert {p["name"] for p in state["plugins"]} == {"prometheus", "post-function", "http-log"}
    assert [p["service"] for p in state["plugins"] if p["name"] == "prometheus"] == [None]
    assert all(p["service"] for p in state["plugins"] if p["name"] == "post-function")
    assert [r["name"] for r in state["routes"]] == ["unrelated-route"]
    assert [c["username"] for c in state["consumers"]] == ["unrelated-user"]
    assert [a["group"] for a in state["acls"]] == ["unrelated-group"]
    assert all(SEED_TAG in u["tags"] for u in state["upstreams"])
    with pytest.raises(RuntimeError, match="already holds"):
        seed_unrelated(kong)
    assert snapshot(kong) == state


def test_another_sidecars_canary_is_found_and_a_stable_one_is_not(kong):
    seed_unrelated(kong)
    assert other_canaries(kong, "mine") == [OTHER_CANARY]
    assert other_canaries(kong, OTHER_CANARY) == []
    target = kong.get(f"/upstreams/{OTHER_CANARY}/targets").json()["data"]
    canary = next(t for t in target if "variant=canary" in t["tags"])
    kong.patch(f"/upstreams/{OTHER_CANARY}", json={"tags": ["managed-by=kong-canary"]})
    assert other_canaries(kong, "mine") == [OTHER_CANARY]  # weight on its canary still
    weight = {"weight": 0}
    kong.patch(f"/upstreams/{OTHER_CANARY}/targets/{canary['id']}", json=weight)
    assert other_canaries(kong, "mine") == []  # managed once, stable-only now


def test_differences_name_what_appeared_disappeared_and_changed(kong):
    seed_unrelated(kong)
    before = snapshot(kong)
    assert differences(before, snapshot(kong)) == []
    kong.post("/upstreams", json={"name": "left-behind"}).raise_for_status()
    kong.delete("/upstreams/unrelated-000").raise_for_status()
    target = kong.get(f"/upstreams/{OTHER_CANARY}/targets").json()["data"][0]
    kong.patch(
        f"/upstreams/{OTHER_CANARY}/targets/{target['id']}", json={"weight": 1}
    ).raise_for_status()
    gone = next(u["id"] for u in before["upstreams"] if u["name"] == "unrelated-000")
    other = next(u["id"] for u in before["upstreams"] if u["name"] == OTHER_CANARY)
    lines = differences(before, snapshot(kong))
    assert sorted(line.split(" (")[0].rsplit(" ", 1)[0] for line in lines) == sorted(
        [
            "upstreams: left behind",
            "upstreams: removed",
            f"targets of upstream {gone}: removed",
            f"targets of upstream {other}: changed",
        ]
    )
    assert "(left-behind)" in lines[0] and "(unrelated-000)" in lines[1]
    assert '"weight": 1' in next(line for line in lines if "changed" in line)


def test_the_command_line_seeds_snapshots_and_compares(tmp_path, capsys):
    with serve_in_thread("3.9", seed={"upstreams": []}) as server:
        assert main(["seed", server.url]) == 0
        capsys.readouterr()
        assert main(["snapshot", server.url]) == 0
        (tmp_path / "before.json").write_text(capsys.readouterr().out)
        with httpx.Client(base_url=server.url, timeout=10) as kong:
            kong.post("/upstreams", json={"name": "left-behind"}).raise_for_status()
        assert main(["snapshot", server.url]) == 0
        (tmp_path / "after.json").write_text(capsys.readouterr().out)
    before, after = str(tmp_path / "before.json"), str(tmp_path / "after.json")
    assert OTHER_CANARY in Path(before).read_text()
    assert main(["compare", before, before]) == 0
    assert capsys.readouterr().err == ""
    assert main(["compare", before, after]) == 1
    assert "upstreams: left behind" in capsys.readouterr().err
    assert main(["nonsense"]) == 2
