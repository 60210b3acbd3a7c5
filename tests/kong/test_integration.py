"""Contract suite over real HTTP: the same tests for Kong 2.8 / 3.4 / 3.9, 3.4 with RBAC and a
workspace, Konnect, DB-less (local server profiles) and, when KONG_ADMIN_URL is set, a real Kong.

Checks read Kong back with raw HTTP (``env.weights()``) so they do not trust the client.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from sidecar.kong import errors
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour
from tests.kong.conftest import LOCAL, PARAMS, KongEnv, local_settings, seed, start_local


def _needs_writes(env: KongEnv) -> None:
    if not env.writable:
        pytest.skip(f"{env.name} is read-only (covered by test_read_only_node_refuses_writes)")


def test_info_and_flavour(kong_env: KongEnv) -> None:
    info = kong_env.admin.info()
    expected = kong_env.param.expected_flavour
    if expected is not None:
        assert kong_env.admin.flavour is expected
    assert info.writable is kong_env.writable
    assert kong_env.admin.ping().flavour is info.flavour


def test_lists_every_seeded_target_normalised(kong_env: KongEnv) -> None:
    got = {t.target: (t.weight, t.tags) for t in kong_env.admin.targets(kong_env.upstream)}
    assert got == {
        "10.0.0.1:80": (100, ("variant=stable",)),
        "10.0.0.2:80": (0, ("variant=baseline",)),
        "10.0.0.3:80": (0, ("variant=canary",)),
    }
    assert kong_env.admin.upstream(kong_env.upstream).name == kong_env.upstream
    assert kong_env.upstream in {u.name for u in kong_env.admin.upstreams()}


def test_target_lookup_by_any_spelling(kong_env: KongEnv) -> None:
    admin, up = kong_env.admin, kong_env.upstream
    found = admin.target(up, "010.0.0.1:80")
    assert found is not None and found.target == "10.0.0.1:80" and found.weight == 100
    assert admin.target(up, "10.0.0.9:80") is None
    with pytest.raises(errors.KongNotFound):
        admin.target("no-such-upstream", "10.0.0.1:80")


def test_weight_update_round_trip(kong_env: KongEnv) -> None:
    _needs_writes(kong_env)
    admin, up = kong_env.admin, kong_env.upstream
    updated = admin.update_target(up, "10.0.0.3:80", weight=25)
    assert (updated.target, updated.weight, updated.tags) == (
        "10.0.0.3:80",
        25,
        ("variant=canary",),
    )
    admin.update_target(up, "10.0.0.1:80", weight=75, tags=["variant=stable", "step=1"])
    assert kong_env.weights() == {"10.0.0.1:80": 75, "10.0.0.2:80": 0, "10.0.0.3:80": 25}
    assert admin.target(up, "10.0.0.1:80").tags == ("variant=stable", "step=1")
    with pytest.raises(errors.KongNotFound):
        admin.update_target(up, "10.0.0.9:80", weight=1)


def test_create_conflict_and_delete(kong_env: KongEnv) -> None:
    _needs_writes(kong_env)
    admin, up = kong_env.admin, kong_env.upstream
    made = admin.create_target(up, "10.0.0.4", 10, ["variant=extra"])
    assert made.target == "10.0.0.4:8000" and made.weight == 10
    with pytest.raises(errors.KongConflict):  # on 2.x too: the client refuses to POST-update
        admin.create_target(up, "10.0.0.4:8000", 99)
    assert kong_env.weights()["10.0.0.4:8000"] == 10
    admin.delete_target(up, "10.0.0.4")
    assert "10.0.0.4:8000" not in kong_env.weights()
    with pytest.raises(errors.KongNotFound):
        admin.delete_target(up, "10.0.0.4")


def test_server_side_validation_error_is_typed(kong_env: KongEnv) -> None:
    _needs_writes(kong_env)
    # hash_on=header without hash_on_header: a schema violation on every version (recorded)
    with pytest.raises(errors.KongValidationError) as caught:
        kong_env.admin.update_upstream(kong_env.upstream, hash_on="header")
    assert caught.value.status == 400 and caught.value.fields


def test_read_only_node_refuses_writes(kong_env: KongEnv) -> None:
    if kong_env.writable:
        pytest.skip(f"{kong_env.name} is writable")
    with pytest.raises(errors.KongReadOnly, match="control plane or Konnect"):
        kong_env.admin.update_target(kong_env.upstream, "10.0.0.3:80", weight=25)
    assert kong_env.weights()["10.0.0.3:80"] == 0


def test_health_lists_every_target(kong_env: KongEnv) -> None:
    health = kong_env.admin.health(kong_env.upstream)
    assert {t.target for t in health.targets} == {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
    assert {t.target: t.weight for t in health.targets}["10.0.0.1:80"] == 100


def test_bad_credentials_are_auth_errors(kong_env: KongEnv) -> None:
    ours = kong_env.settings
    field = "konnect_token" if ours.konnect_token else "admin_token" if ours.admin_token else None
    if field is None:
        pytest.skip(f"{kong_env.name} has no authentication")
    settings = dataclasses.replace(ours, **{field: "wrong"})
    with build_http_client(settings) as http, pytest.raises(errors.KongAuthError):
        KongAdmin(http).ping()


# -- fault injection (local server only) -------------------------------------------------------


def _faults(env: KongEnv):
    if env.server is None:
        pytest.skip("fault injection needs the local server")
    return env.server.app.faults


def test_failed_read_is_retried(kong_env: KongEnv) -> None:
    faults = _faults(kong_env)
    faults.fail(1, "500", methods=("GET",), path_contains="/targets")
    assert len(kong_env.admin.targets(kong_env.upstream)) == 3
    assert kong_env.sleeps.calls == [0.1]


@pytest.mark.parametrize("mode", ["500", "reset", "truncated", "html"])
def test_failed_write_is_not_retried(kong_env: KongEnv, mode: str) -> None:
    _needs_writes(kong_env)
    faults = _faults(kong_env)
    kong_env.admin.info()  # detect first, so the fault hits the write itself
    faults.fail(1, mode, methods=("PATCH", "PUT"))
    with pytest.raises((errors.KongUnavailable, errors.KongProtocolError)):
        kong_env.admin.update_target(kong_env.upstream, "10.0.0.3:80", weight=25)
    assert kong_env.weights()["10.0.0.3:80"] == 0  # fault fired before applying, no retry
    assert kong_env.sleeps.calls == []


def test_hanging_kong_gives_up_within_the_read_timeout(kong_env: KongEnv) -> None:
    faults = _faults(kong_env)
    faults.delay = 5.0
    faults.fail(1, "timeout", methods=("GET",), path_contains="/upstreams")
    settings = local_settings(
        kong_env.name,
        kong_env.server.url,
        read_timeout=0.3,
        connect_timeout=0.3,
        write_timeout=0.3,
        pool_timeout=0.3,
    )
    with build_http_client(settings) as http:
        admin = KongAdmin(http, read_retries=0, flavour=kong_env.admin.flavour)
        started = time.monotonic()
        with pytest.raises(errors.KongUnavailable, match=r"timed out after 0\.3 s"):
            admin.upstream(kong_env.upstream)
        assert time.monotonic() - started < 1.5


# -- big upstreams: nested pagination against the server --------------------------------------


@pytest.mark.parametrize("name", [n for n in LOCAL if PARAMS[n].workspace is None])
def test_more_than_one_page_of_targets(name: str) -> None:
    many = [(f"10.1.{i // 200}.{i % 200 + 1}:80", 1, []) for i in range(1005)]
    with (
        start_local(name, seed_data=seed("big", many)) as srv,
        build_http_client(local_settings(name, srv.url)) as http,
    ):
        admin = KongAdmin(http)
        got = admin.targets("big")
        assert len(got) == 1005
        assert {t.target for t in got} == {t for t, _, _ in many}
        if admin.flavour is not Flavour.KONNECT:
            assert len(admin.health("big").targets) == 1005
