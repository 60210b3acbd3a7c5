"""Paging of targets and upstreams, beyond the 4-target recordings."""

from __future__ import annotations

import pytest

from tests.kong_local.conftest import StartKong

N_TARGETS = 2500


def _seed(n: int) -> dict:
    targets = [{"target": f"10.{i // 250}.{i % 250}.1:80", "weight": 1} for i in range(n)]
    return {"upstreams": [{"name": "big", "targets": targets}]}


@pytest.fixture
def big(start_kong: StartKong, client_for):
    ticks = iter(range(10**6))
    server = start_kong("3.9", seed=_seed(N_TARGETS), clock=lambda: 1_700_000_000 + next(ticks))
    return client_for(server)


def test_targets_size_is_capped_at_1000_and_next_drops_size(big) -> None:
    """kong/db/dao/targets.lua page_for_upstream: ``size = min(size, max_page_size)`` without
    an error, ``next_offset = tostring(size + offset)``; the route builds ``next`` from the
    offset only (kong/api/endpoints.lua get_collection_endpoint for targets)."""
    body = big.get("/upstreams/big/targets", params={"size": 5000}).json()
    assert len(body["data"]) == 1000
    assert body["offset"] == "1000"
    assert body["next"] == "/upstreams/big/targets?offset=1000"


def test_walking_offsets_returns_every_target_once_newest_first(big) -> None:
    """Same source: all targets newest first, integer-string offsets; the last page has no
    offset and ``next`` null."""
    seen: list[dict] = []
    sizes: list[int] = []
    offset = None
    while True:
        params = {"size": 1000, **({"offset": offset} if offset else {})}
        body = big.get("/upstreams/big/targets", params=params).json()
        seen += body["data"]
        sizes.append(len(body["data"]))
        offset = body.get("offset")
        if offset is None:
            assert body["next"] is None
            break
    assert sizes == [1000, 1000, 500]
    assert len({t["id"] for t in seen}) == N_TARGETS
    created = [t["created_at"] for t in seen]
    assert created == sorted(created, reverse=True)
    assert seen[0]["target"] == "10.9.249.1:80"  # the last one seeded


def test_default_page_is_100(big) -> None:
    """kong/db/dao/init.lua pagination defaults: page_size 100."""
    body = big.get("/upstreams/big/targets").json()
    assert len(body["data"]) == 100 and body["offset"] == "100"


def test_health_pages_like_targets(big) -> None:
    """kong/api/routes/upstreams.lua /health: page_for_upstream_with_health, next
    ``/upstreams/%s/health?offset=%s``."""
    body = big.get("/upstreams/big/health", params={"size": 10}).json()
    assert len(body["data"]) == 10
    assert body["next"] == "/upstreams/big/health?offset=10"


def test_upstreams_list_validates_size_and_keeps_it_in_next(
    start_kong: StartKong, client_for
) -> None:
    """kong/api/endpoints.lua: size must be 1..1000 (400 code 9, recorded for size=0) or a
    number; the opaque offset walks the collection."""
    seed = {"upstreams": [{"name": f"u{i}"} for i in range(5)]}
    client = client_for(start_kong("3.9", seed=seed))
    for bad, message in [
        ("1001", "size must be an integer between 1 and 1000"),
        ("abc", "size must be a number"),
    ]:
        r = client.get("/upstreams", params={"size": bad})
        assert r.status_code == 400
        assert r.json() == {"code": 9, "name": "invalid size", "message": message}
    names = []
    first = client.get("/upstreams", params={"size": 2}).json()
    assert first["next"].endswith("&size=2") and first["next"].startswith("/upstreams?offset=")
    names += [u["name"] for u in first["data"]]
    offset = first["offset"]
    while offset:
        page = client.get("/upstreams", params={"size": 2, "offset": offset}).json()
        names += [u["name"] for u in page["data"]]
        offset = page.get("offset")
    assert sorted(names) == [f"u{i}" for i in range(5)]
    assert client.get("/upstreams", params={"offset": "!!"}).json()["name"] == "invalid offset"


def test_nested_target_list_ignores_tag_filter(start_kong: StartKong, client_for) -> None:
    """[DOCS] 2.8 admin-api: "Filtering by tags is not supported in foreign key relationship
    endpoints" (recorded for one tag); top-level /upstreams does filter."""
    seed = {
        "upstreams": [
            {
                "name": "a",
                "tags": ["team=x"],
                "targets": [
                    {"target": "10.0.0.1:80", "tags": ["variant=stable"]},
                    {"target": "10.0.0.2:80", "tags": ["variant=canary"]},
                ],
            },
            {"name": "b", "tags": ["team=y"]},
        ]
    }
    client = client_for(start_kong("3.4", seed=seed))
    assert (
        len(client.get("/upstreams/a/targets", params={"tags": "variant=canary"}).json()["data"])
        == 2
    )
    names = [u["name"] for u in client.get("/upstreams", params={"tags": "team=x"}).json()["data"]]
    assert names == ["a"]
    r = client.get("/upstreams", params={"tags": "a,b/c"})
    assert r.status_code == 400 and r.json()["name"] == "invalid options"


def test_top_level_tag_filter_follows_kongs_regexes(start_kong: StartKong, client_for) -> None:
    """endpoints.lua's TAGS_AND_REGEX/TAGS_OR_REGEX (2.8.5, 3.4.2, 3.9.3): ``=`` and non-ASCII
    are tag characters; a filter neither regex matches (a space, a control character) is
    400 "invalid filter syntax", not an empty page."""
    seed = {
        "upstreams": [
            {"name": "a", "tags": ["managed-by=kong-canary", "équipe"]},
            {"name": "b", "tags": ["managed-by=other"]},
        ]
    }
    client = client_for(start_kong("3.9", seed=seed))

    def names(tags: str) -> list[str]:
        return [u["name"] for u in client.get("/upstreams", params={"tags": tags}).json()["data"]]

    assert names("managed-by=kong-canary") == ["a"]
    assert names("managed-by=kong-canary,équipe") == ["a"]
    assert sorted(names("managed-by=other/équipe")) == ["a", "b"]
    for bad in ("managed-by kong-canary", "a\tb"):
        r = client.get("/upstreams", params={"tags": bad})
        assert r.status_code == 400, bad
        assert r.json()["options"] == {"tags": "invalid filter syntax"}
