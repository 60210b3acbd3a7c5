"""Consumers and ACL groups on the local server, rule by rule against Kong's source
(``kong/db/schema/entities/consumers.lua``, ``kong/api/routes/consumers.lua``,
``kong/plugins/acl/daos.lua`` and ``api.lua``, ``kong/api/endpoints.lua``; tags 2.8.5,
3.4.2, 3.9.3). No recording of these entities exists; the 409/400 bodies follow
``kong/db/errors.lua`` as the recorded upstream/target ones do."""

from __future__ import annotations

import httpx
import pytest

from tests.kong_local.conftest import StartKong

WRITABLE = ("2.8", "3.4", "3.9")


def _consumer(client: httpx.Client, **body: object) -> dict:
    r = client.post("/consumers", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("profile", WRITABLE)
def test_consumer_fields_per_version(start_kong: StartKong, client_for, profile: str) -> None:
    """``updated_at`` arrived in 3.3; ``tags`` null when unset."""
    client = client_for(start_kong(profile))
    body = _consumer(client, username="alice")
    expected = {"id", "created_at", "username", "custom_id", "tags"}
    if profile != "2.8":
        expected.add("updated_at")
    assert set(body) == expected
    assert body["custom_id"] is None and body["tags"] is None


@pytest.mark.parametrize("profile", WRITABLE)
def test_username_or_custom_id_required_and_each_unique(
    start_kong: StartKong, client_for, profile: str
) -> None:
    client = client_for(start_kong(profile))
    r = client.post("/consumers", json={"tags": ["x"]})
    assert r.status_code == 400
    assert r.json()["fields"] == {
        "@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]
    }
    _consumer(client, username="alice", custom_id="m-1")
    r = client.post("/consumers", json={"username": "alice"})
    assert r.status_code == 409
    assert r.json()["message"] == "UNIQUE violation detected on '{username=\"alice\"}'"
    r = client.post("/consumers", json={"username": "bob", "custom_id": "m-1"})
    assert r.status_code == 409 and r.json()["fields"] == {"custom_id": "m-1"}


def test_a_consumer_is_found_by_id_or_username_and_custom_id_by_query(
    start_kong: StartKong, client_for
) -> None:
    """``endpoint_key = "username"``; ``GET /consumers?custom_id=`` (routes/consumers.lua)."""
    client = client_for(start_kong("3.9"))
    alice = _consumer(client, username="alice", custom_id="merchant-7")
    assert client.get(f"/consumers/{alice['id']}").json() == alice
    assert client.get("/consumers/alice").json() == alice
    assert client.get("/consumers/nobody").status_code == 404
    assert client.get("/consumers", params={"custom_id": "merchant-7"}).json() == {
        "data": [alice],
        "next": None,
    }
    assert client.get("/consumers", params={"custom_id": "none"}).json() == {
        "data": [],
        "next": None,
    }
    r = client.get("/consumers", params={"custom_id": ""})
    assert r.status_code == 400 and r.json() == {"message": "custom_id must be an unempty string"}


def test_consumers_page_and_filter_by_tags(start_kong: StartKong, client_for) -> None:
    client = client_for(start_kong("3.4"))
    for i in range(5):
        _consumer(client, username=f"c{i}", tags=["vip"] if i % 2 else ["std"])
    first = client.get("/consumers", params={"size": 2}).json()
    assert len(first["data"]) == 2 and first["next"].startswith("/consumers?offset=")
    rest = client.get("/consumers", params={"size": 2, "offset": first["offset"]}).json()
    assert {c["id"] for c in rest["data"]}.isdisjoint({c["id"] for c in first["data"]})
    vip = client.get("/consumers", params={"tags": "vip"}).json()["data"]
    assert sorted(c["username"] for c in vip) == ["c1", "c3"]


@pytest.mark.parametrize("profile", WRITABLE)
def test_acl_groups_of_a_consumer(start_kong: StartKong, client_for, profile: str) -> None:
    """Nested collection by username or id; one row per (consumer, group): cache_key."""
    client = client_for(start_kong(profile))
    alice = _consumer(client, username="alice")
    r = client.post("/consumers/alice/acls", json={"group": "vip", "tags": ["managed"]})
    assert r.status_code == 201
    acl = r.json()
    assert acl["consumer"] == {"id": alice["id"]} and acl["group"] == "vip"
    assert set(acl) == {"id", "created_at", "consumer", "group", "tags"}
    r = client.post(f"/consumers/{alice['id']}/acls", json={"group": "vip"})
    assert r.status_code == 409
    assert r.json()["message"] == (
        f'UNIQUE violation detected on \'{{consumer={{id="{alice["id"]}"}},group="vip"}}\''
    )
    assert client.get("/consumers/alice/acls").json()["data"] == [acl]
    r = client.post("/consumers/alice/acls", json={})
    assert r.status_code == 400 and r.json()["fields"] == {"group": "required field missing"}


def test_an_acl_is_addressed_by_group_name_under_its_consumer(
    start_kong: StartKong, client_for
) -> None:
    """``acl/api.lua``: a non-UUID segment is the group; 404 unless PUT, which creates it."""
    client = client_for(start_kong("3.9"))
    _consumer(client, username="alice")
    _consumer(client, username="bob")
    acl = client.post("/consumers/alice/acls", json={"group": "vip"}).json()
    assert client.get("/consumers/alice/acls/vip").json() == acl
    assert client.get(f"/consumers/alice/acls/{acl['id']}").json() == acl
    assert client.get("/consumers/bob/acls/vip").status_code == 404
    assert client.get(f"/consumers/bob/acls/{acl['id']}").status_code == 404
    assert client.patch("/consumers/bob/acls/vip", json={"tags": ["t"]}).status_code == 404
    made = client.put("/consumers/bob/acls/staff", json={})
    assert made.status_code == 200 and made.json()["group"] == "staff"
    again = client.put("/consumers/bob/acls/staff", json={"tags": ["qa"]})
    assert again.json()["id"] == made.json()["id"] and again.json()["tags"] == ["qa"]
    assert client.delete("/consumers/alice/acls/vip").status_code == 204
    assert client.get("/consumers/alice/acls").json()["data"] == []


def test_all_acls_list_with_group_and_tags(start_kong: StartKong, client_for) -> None:
    """``/acls`` (endpoints.lua's generated collection) pages all groups with ``?tags=``."""
    client = client_for(start_kong("3.4"))
    ids = {}
    for name, group in (("alice", "vip"), ("bob", "vip"), ("carol", "std")):
        ids[name] = _consumer(client, username=name)["id"]
        client.post(f"/consumers/{name}/acls", json={"group": group, "tags": [group]})
    rows = client.get("/acls").json()["data"]
    vip = {r["consumer"]["id"] for r in rows if r["group"] == "vip"}
    assert vip == {ids["alice"], ids["bob"]}
    tagged = client.get("/acls", params={"tags": "std"}).json()["data"]
    assert [r["consumer"]["id"] for r in tagged] == [ids["carol"]]
    r = client.post("/acls", json={"group": "x", "consumer": {"id": ids["carol"]}})
    assert r.status_code == 201
    missing = "5c1d8e1c-3f5b-4c8e-9d7e-2a0e6e0c1b11"
    r = client.post("/acls", json={"group": "x", "consumer": {"id": missing}})
    assert r.status_code == 400 and r.json()["name"] == "foreign key violation"


def test_deleting_a_consumer_cascades_to_its_acls(start_kong: StartKong, client_for) -> None:
    client = client_for(start_kong("3.9"))
    _consumer(client, username="alice")
    client.post("/consumers/alice/acls", json={"group": "vip"})
    assert client.delete("/consumers/alice").status_code == 204
    assert client.get("/acls").json()["data"] == []
    assert client.delete("/consumers/alice").status_code == 204


def test_plugins_may_reference_an_existing_consumer(start_kong: StartKong, client_for) -> None:
    """The plugin's consumer foreign key now resolves; deleting the consumer cascades."""
    client = client_for(start_kong("3.9"))
    alice = _consumer(client, username="alice")
    body = {"name": "prometheus", "consumer": {"id": alice["id"]}}
    r = client.post("/plugins", json=body)
    assert r.status_code == 201, r.text
    client.delete("/consumers/alice")
    assert client.get("/plugins").json()["data"] == []


@pytest.mark.parametrize("profile", ["dbless", "data-plane"])
def test_dbless_refuses_consumer_writes(start_kong: StartKong, client_for, profile: str) -> None:
    client = client_for(start_kong(profile))
    r = client.post("/consumers", json={"username": "alice"})
    assert r.status_code == 405
    assert r.json()["message"] == "cannot create 'consumers' entities when not using a database"


def test_a_patch_clearing_both_names_is_worded_as_an_update(
    start_kong: StartKong, client_for
) -> None:
    client = client_for(start_kong("2.8"))
    _consumer(client, username="alice")
    r = client.patch("/consumers/alice", json={"username": None})
    assert r.status_code == 400
    assert r.json()["fields"] == {
        "@entity": [
            "when updating, at least one of these fields must be non-empty: 'custom_id', 'username'"
        ]
    }


def test_paging_acls_resolves_every_group_to_its_consumer_ids() -> None:
    """What the sidecar does to resolve groups: page ``/acls`` (any page size) and map each
    group to the consumer ids in it; random memberships, checked against what was created."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sidecar.kong_local.server import serve_in_thread

    memberships = st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=6),
        st.sets(st.sampled_from(["vip", "staff", "qa", "never canary"]), max_size=3),
        max_size=12,
    )

    with serve_in_thread("3.9", test_controls=True) as server:
        client = httpx.Client(base_url=server.url, timeout=5.0)

        @settings(max_examples=25, deadline=None)
        @given(members=memberships, size=st.integers(min_value=1, max_value=5))
        def check(members: dict[str, set[str]], size: int) -> None:
            server.app.reset()
            ids = {}
            for name, groups in members.items():
                ids[name] = _consumer(client, username=name)["id"]
                for group in groups:
                    r = client.post(f"/consumers/{name}/acls", json={"group": group})
                    assert r.status_code == 201
            found: dict[str, set[str]] = {}
            params: dict[str, object] = {"size": size}
            while True:
                page = client.get("/acls", params=params).json()
                for row in page["data"]:
                    found.setdefault(row["group"], set()).add(row["consumer"]["id"])
                if page["next"] is None:
                    break
                params = {"size": size, "offset": page["offset"]}
            expected: dict[str, set[str]] = {}
            for name, groups in members.items():
                for group in groups:
                    expected.setdefault(group, set()).add(ids[name])
            assert found == expected

        try:
            check()
        finally:
            client.close()
