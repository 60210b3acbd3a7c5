"""The ``post-function`` plugin on the local server, against the facts measured on a real
Kong 3.4.2 (``kong-admin-api.md`` section 11, bodies in ``tests/fixtures/kong/
kong-3.4.2-post-function.json``) and against Kong's source (``kong/plugins/pre-function/
_schema.lua``, ``kong/templates/kong_defaults.lua``, ``kong/db/schema/init.lua``; tags 2.8.5,
3.4.2, 3.9.3)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.core.cohort_lua import CohortRouting, HeaderOverride, render_access_lua
from sidecar.kong_local.proxy import ServerlessError
from sidecar.kong_local.serverless import PHASES, lua_syntax_error
from tests.kong_local.conftest import StartKong

FACTS = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures/kong/kong-3.4.2-post-function.json"
    ).read_text()
)
WRITABLE = ("2.8", "3.4", "3.9")
ROUTER = "return function() kong.service.set_upstream('coh--stable') end"


def _service(client: httpx.Client, name: str = "svc") -> dict[str, Any]:
    r = client.post("/services", json={"name": name, "host": "coh.upstream"})
    assert r.status_code == 201, r.text
    return r.json()


def _matches(expected: Any, actual: Any, bound: dict[str, str]) -> None:
    """Recorded (sub)bodies with ``<service_id>``-style placeholders, bound on first sight:
    every key given must be there with that value (the note quotes bodies in part)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(expected) <= set(actual), (expected, actual)
        for key, value in expected.items():
            _matches(value, actual[key], bound)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), (expected, actual)
        for want, got in zip(expected, actual, strict=True):
            _matches(want, got, bound)
    elif isinstance(expected, str) and re.search(r"<\w+_id>", expected):
        names = re.findall(r"<(\w+_id)>", expected)
        pattern = re.escape(expected)
        for name in names:
            known = bound.get(name)
            pattern = pattern.replace(
                re.escape(f"<{name}>"), re.escape(known) if known else f"(?P<{name}>[0-9a-f-]+)"
            )
        found = re.fullmatch(pattern, actual)
        assert found, (expected, actual)
        bound.update(found.groupdict())
    else:
        assert expected == actual, (expected, actual)


def test_replays_the_measured_3_4_2_answers(start_kong: StartKong, client_for) -> None:
    """Each recorded request gets the recorded status and body (placeholders for ids)."""
    client = client_for(start_kong("3.4"))
    bound: dict[str, str] = {}
    for step in FACTS["steps"]:
        request = step["request"]
        r = client.request(request["method"], request["path"], json=request.get("json"))
        assert r.status_code == step["status"], (step["request"], r.text)
        _matches(step["body"], r.json(), bound)


def test_root_shows_untrusted_lua_and_post_function_by_default(
    start_kong: StartKong, client_for
) -> None:
    """``untrusted_lua = sandbox`` is the default of every modelled version; post-function
    is bundled (2.x lists names -> true, 3.x name -> {version, priority=-1000})."""
    for profile in WRITABLE:
        body = client_for(start_kong(profile)).get("/").json()
        assert body["configuration"]["untrusted_lua"] == "sandbox"
        available = body["plugins"]["available_on_server"]
        if profile == "2.8":
            assert available["post-function"] is True
        else:
            assert available["post-function"]["priority"] == -1000


@pytest.mark.parametrize("mode", ["on", "off", "sandbox"])
def test_untrusted_lua_is_set_at_start_and_off_still_accepts_the_plugin(
    start_kong: StartKong, client_for, mode: str
) -> None:
    """The schema checks syntax only (``loadstring``); ``untrusted_lua = off`` stops the code
    when it runs (``kong/tools/sandbox.lua``), not when it is created."""
    client = client_for(start_kong("3.9", configuration={"untrusted_lua": mode}))
    assert client.get("/").json()["configuration"]["untrusted_lua"] == mode
    _service(client)
    r = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}}
    )
    assert r.status_code == 201


def test_untrusted_lua_rejects_unknown_values() -> None:
    from sidecar.kong_local.server import create_wsgi_app

    with pytest.raises(ValueError, match="untrusted_lua must be one of on, off, sandbox"):
        create_wsgi_app("3.9", configuration={"untrusted_lua": "maybe"})


@pytest.mark.parametrize("profile", WRITABLE)
def test_a_kong_without_post_function_refuses_it(
    start_kong: StartKong, client_for, profile: str
) -> None:
    """Left out of ``plugins``: not in ``available_on_server``, and create says so
    (``kong/db/schema/entities/plugins.lua`` subschema_error)."""
    client = client_for(start_kong(profile, configuration={"disabled_plugins": ["post-function"]}))
    assert "post-function" not in client.get("/").json()["plugins"]["available_on_server"]
    _service(client)
    r = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}}
    )
    assert r.status_code == 400
    assert r.json()["fields"] == {
        "name": "plugin 'post-function' not enabled; add it to the 'plugins' configuration property"
    }


@pytest.mark.parametrize("profile", WRITABLE)
def test_every_phase_is_echoed_and_2_8_keeps_functions(
    start_kong: StartKong, client_for, profile: str
) -> None:
    client = client_for(start_kong(profile))
    _service(client)
    r = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}}
    )
    assert r.status_code == 201
    expected = {phase: [] for phase in PHASES} | {"access": [ROUTER]}
    if profile == "2.8":
        expected["functions"] = []
    assert r.json()["config"] == expected


def test_2_8_functions_and_access_are_mutually_exclusive(start_kong: StartKong, client_for) -> None:
    """2.8.5 ``_schema.lua`` entity check ``mutually_exclusive_sets``; 3.x dropped
    ``functions`` (unknown field)."""
    config = {"functions": [ROUTER], "access": [ROUTER]}
    client = client_for(start_kong("2.8"))
    _service(client)
    r = client.post("/services/svc/plugins", json={"name": "post-function", "config": config})
    assert r.status_code == 400
    assert r.json()["fields"] == {
        "@entity": ["these sets are mutually exclusive: ('config.functions'), ('config.access')"]
    }
    client = client_for(start_kong("3.9"))
    _service(client)
    r = client.post("/services/svc/plugins", json={"name": "post-function", "config": config})
    assert r.status_code == 400
    assert r.json()["fields"] == {"config": {"functions": "unknown field"}}


@pytest.mark.parametrize("profile", WRITABLE)
def test_one_phase_at_least(start_kong: StartKong, client_for, profile: str) -> None:
    """``at_least_one_of`` the phases; an empty array is empty (``is_nonempty``)."""
    client = client_for(start_kong(profile))
    _service(client)
    r = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": []}}
    )
    assert r.status_code == 400
    [message] = r.json()["fields"]["@entity"]
    assert message.startswith("at least one of these fields must be non-empty: ")
    assert ("'config.functions'" in message) == (profile == "2.8")


def test_only_the_bad_element_is_reported(start_kong: StartKong, client_for) -> None:
    client = client_for(start_kong("3.4"))
    _service(client)
    config = {"log": ["return function() end", "x ="]}
    r = client.post("/services/svc/plugins", json={"name": "post-function", "config": config})
    assert r.status_code == 400
    error = lua_syntax_error("x =")
    assert error is not None
    assert r.json()["fields"] == {
        "config": {"log": [None, f"error parsing post-function: {error}"]}
    }


def test_no_consumer_scope(start_kong: StartKong, client_for) -> None:
    """``consumer = typedefs.no_consumer`` (``eq = null``)."""
    client = client_for(start_kong("3.9"))
    body = {"name": "post-function", "consumer": {"id": "4b7a9f9d-54b7-4c43-8e8a-0bd4e1e6b8a1"}}
    body["config"] = {"access": [ROUTER]}
    r = client.post("/plugins", json=body)
    assert r.status_code == 400
    assert r.json()["fields"] == {"consumer": "value must be null"}


def test_run_time_errors_are_accepted_at_create(start_kong: StartKong, client_for) -> None:
    """Only syntax is checked: ``require("os")`` fails in the sandbox when run, not here."""
    client = client_for(start_kong("3.4"))
    _service(client)
    code = 'return function() require("os").exit() end'
    r = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [code]}}
    )
    assert r.status_code == 201


def test_patch_is_validated_like_create(start_kong: StartKong, client_for) -> None:
    client = client_for(start_kong("3.9"))
    _service(client)
    created = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}}
    ).json()
    r = client.patch(f"/plugins/{created['id']}", json={"config": {"access": ["end"]}})
    assert r.status_code == 400
    assert r.json()["fields"]["config"]["access"][0].startswith("error parsing post-function: ")
    assert client.get(f"/plugins/{created['id']}").json()["config"]["access"] == [ROUTER]
    r = client.patch(f"/plugins/{created['id']}", json={"config": {"access": [ROUTER + " "]}})
    assert r.status_code == 200 and r.json()["config"]["access"] == [ROUTER + " "]


@pytest.mark.parametrize("profile", ["dbless", "data-plane"])
def test_dbless_refuses_the_write_as_for_any_entity(
    start_kong: StartKong, client_for, profile: str
) -> None:
    """``kong/db/strategies/off/init.lua``: 405 ``cannot create 'plugins' entities …``."""
    client = client_for(start_kong(profile))
    r = client.post("/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}})
    assert r.status_code == 405
    assert r.json()["message"] == "cannot create 'plugins' entities when not using a database"


def test_konnect_accepts_post_function_and_reports_syntax_errors_as_problems(
    start_kong: StartKong, client_for
) -> None:
    """Konnect supports the plugin (developer.konghq.com/plugins/post-function: Konnect
    hybrid, cloud-gateways, serverless); errors come as problem+json."""
    client = client_for(start_kong("konnect"))
    assert client.post("/core-entities/services", json={"name": "svc", "host": "x"}).is_success
    path = "/core-entities/services/svc/plugins"
    r = client.post(path, json={"name": "post-function", "config": {"access": [ROUTER]}})
    assert r.status_code == 201
    r = client.post(path, json={"name": "post-function", "config": {"log": ["end"]}})
    assert r.status_code == 400
    assert "error parsing post-function: " in r.json()["detail"]


@pytest.mark.parametrize("profile", WRITABLE)
def test_one_post_function_per_service_scope(
    start_kong: StartKong, client_for, profile: str
) -> None:
    """``cache_key = {name, route, service, consumer}`` (``entities/plugins.lua``): a user's
    post-function on the service blocks a second one; another service has its own scope."""
    client = client_for(start_kong(profile))
    svc = _service(client)
    _service(client, "other")
    body = {"name": "post-function", "config": {"access": [ROUTER]}}
    assert client.post("/services/svc/plugins", json=body).status_code == 201
    r = client.post("/plugins", json={**body, "service": {"id": svc["id"]}})
    assert r.status_code == 409
    assert r.json()["message"] == (
        "UNIQUE violation detected on "
        f'\'{{consumer=null,name="post-function",route=null,service={{id="{svc["id"]}"}}}}\''
    )
    assert client.post("/services/other/plugins", json=body).status_code == 201
    assert client.post("/plugins", json=body).status_code == 201  # global scope
    assert client.post("/plugins", json=body).status_code == 409


def _cohort_kong(start_kong: StartKong, client_for, **kwargs: Any) -> tuple[Any, httpx.Client]:
    """Upstream ``coh`` with shadows, consumers alice (never) and bob, the router on ``svc``."""
    server = start_kong("3.4", **kwargs)
    client = client_for(server)
    for name in ("coh", "coh--stable", "coh--canary"):
        assert client.post("/upstreams", json={"name": name}).status_code == 201
    alice = client.post("/consumers", json={"username": "alice"}).json()
    client.post("/consumers", json={"username": "bob", "custom_id": "b-1"})
    client.post("/services", json={"name": "svc", "host": "coh"})
    routing = CohortRouting(
        frozenset({alice["id"]}), frozenset(), HeaderOverride("X-Canary", "always", "never"),
        "coh--stable", "coh--canary", canary_live=True,
    )  # fmt: skip
    body = {"name": "post-function", "config": {"access": [render_access_lua(routing)]}}
    assert client.post("/services/svc/plugins", json=body).status_code == 201
    return server.app, client


def test_the_router_in_kong_sends_alice_to_stable_and_leaves_bob(
    start_kong: StartKong, client_for
) -> None:
    """End to end on the local server: the generated Lua stored in the plugin, run as Kong's
    data plane would (the reference's measured run: alice 20/20 on ``coh--stable``, bob on
    ``coh``)."""
    app, client = _cohort_kong(start_kong, client_for)
    assert app.proxy_upstream("svc", "alice") == "coh--stable"
    assert app.proxy_upstream("svc", "bob") == "coh"
    assert app.proxy_upstream("svc") == "coh"
    assert app.proxy_upstream("svc", "bob", {"x-canary": "always"}) == "coh--canary"
    client.delete("/upstreams/coh--stable")  # set_upstream finds no such upstream: untouched
    assert app.proxy_upstream("svc", "alice") == "coh"


def test_untrusted_lua_off_fails_the_request_and_on_runs_unsandboxed(
    start_kong: StartKong, client_for
) -> None:
    app, _ = _cohort_kong(start_kong, client_for, configuration={"untrusted_lua": "off"})
    with pytest.raises(ServerlessError, match="'untrusted_lua' config option is set to 'off'"):
        app.proxy_upstream("svc", "alice")
    app, client = _cohort_kong(start_kong, client_for, configuration={"untrusted_lua": "on"})
    assert app.proxy_upstream("svc", "alice") == "coh--stable"
    code = "return function() if setmetatable then kong.service.set_upstream('coh--canary') end end"
    client.post("/services", json={"name": "open", "host": "coh"})
    body = {"name": "post-function", "config": {"access": [code]}}
    assert client.post("/services/open/plugins", json=body).status_code == 201
    assert app.proxy_upstream("open") == "coh--canary"  # setmetatable: not sandboxed


def test_a_run_time_error_fails_the_request(start_kong: StartKong, client_for) -> None:
    server = start_kong("3.9")
    client = client_for(server)
    client.post("/services", json={"name": "svc", "host": "coh"})
    body = {"name": "post-function", "config": {"access": ["return function() require('os') end"]}}
    client.post("/services/svc/plugins", json=body)
    with pytest.raises(ServerlessError, match="require 'os' not allowed within sandbox"):
        server.app.proxy_upstream("svc")


def test_a_patch_emptying_every_phase_is_worded_as_an_update(
    start_kong: StartKong, client_for
) -> None:
    """``Schema:validate_update`` prefixes AT_LEAST_ONE_OF with "when updating, "."""
    client = client_for(start_kong("3.4"))
    _service(client)
    created = client.post(
        "/services/svc/plugins", json={"name": "post-function", "config": {"access": [ROUTER]}}
    ).json()
    r = client.patch(f"/plugins/{created['id']}", json={"config": {"access": []}})
    assert r.status_code == 400
    [message] = r.json()["fields"]["@entity"]
    assert message.startswith("when updating, at least one of these fields must be non-empty: ")


@pytest.mark.parametrize("entity", ["plugin", "consumer"])
def test_a_hybrid_data_planes_config_hash_covers_plugins_and_consumers(
    start_kong: StartKong, client_for, entity: str
) -> None:
    """A DP reports the hash of its whole configuration (``kong/clustering/data_plane.lua``),
    so the propagation of a post-function or a consumer can be watched like a target's."""
    client = client_for(start_kong("hybrid", nodes=2))
    _service(client)

    def hashes() -> set[str]:
        return {d["config_hash"] for d in client.get("/clustering/data-planes").json()["data"]}

    before = hashes()
    if entity == "plugin":
        body = {"name": "post-function", "config": {"access": [ROUTER]}}
        assert client.post("/services/svc/plugins", json=body).status_code == 201
    else:
        assert client.post("/consumers", json={"username": "alice"}).status_code == 201
    after = hashes()
    assert len(after) == 1 and after != before


def test_a_route_post_function_outranks_the_services_and_global_runs_last(
    start_kong: StartKong, client_for
) -> None:
    """``plugins_iterator.lua`` (2.8.5 ``load_configuration_through_combos``, 3.x
    ``lookup_cfg``): route+service, then route, then service, then global; one runs."""
    app, client = _cohort_kong(start_kong, client_for)
    svc = client.get("/services/svc").json()
    route = client.post("/services/svc/routes", json={"name": "r", "paths": ["/r"]}).json()
    other = client.post("/services/svc/routes", json={"name": "plain", "paths": ["/p"]}).json()

    def sends_to(upstream: str) -> dict[str, Any]:
        code = f"return function() kong.service.set_upstream('{upstream}') end"
        return {"name": "post-function", "config": {"access": [code]}}

    on_route = client.post(
        "/plugins", json={**sends_to("coh--canary"), "route": {"id": route["id"]}}
    )
    assert on_route.status_code == 201, on_route.text
    assert app.proxy_upstream("svc", "alice", route="r") == "coh--canary"  # not the cohorts'
    assert app.proxy_upstream("svc", "alice", route=other["id"]) == "coh--stable"
    assert app.proxy_upstream("svc", "alice") == "coh--stable"
    both = {**sends_to("coh"), "route": {"id": route["id"]}, "service": {"id": svc["id"]}}
    assert client.post("/plugins", json=both).status_code == 201
    assert app.proxy_upstream("svc", "alice", route="r") == "coh"
    assert client.post("/plugins", json=sends_to("coh--canary")).status_code == 201  # global
    assert app.proxy_upstream("svc", "alice", route="plain") == "coh--stable"
    with pytest.raises(KeyError):
        app.proxy_upstream("svc", route="nowhere")
