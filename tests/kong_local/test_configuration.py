"""One ``NodeConfiguration`` per local Kong node: Kong's defaults per version, a node's own
values by name, Kong's rules for them (``kong/conf_loader``), and what reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.kong_local.configuration import NodeConfiguration
from sidecar.kong_local.profiles import PROFILE_TABLE, get_profile
from sidecar.kong_local.server import create_wsgi_app
from sidecar.kong_local.worker_state import runs_from


@pytest.mark.parametrize("key", list(PROFILE_TABLE))
def test_defaults_follow_the_profile(key: str) -> None:
    profile = get_profile(key)
    conf = NodeConfiguration.for_profile(profile)
    assert (conf.database, conf.role) == (profile.database, profile.role)
    assert conf.worker_consistency == ("eventual" if profile.is_3x else "strict")
    assert (conf.db_update_frequency, conf.db_update_propagation) == (5, 0)
    assert conf.worker_state_update_frequency == 5
    assert conf.untrusted_lua == "sandbox" and conf.disabled_plugins == frozenset()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"db_update_frequncy": 1}, "db_update_frequncy not modelled by the local Kong"),
        ({"database": "off"}, "database and role come from the profile"),
        ({"role": "data_plane"}, "database and role come from the profile"),
        ({"worker_state_update_frequency": 0}, "must be greater than 0"),
        ({"worker_state_update_frequency": "5"}, "worker_state_update_frequency must be a number"),
        ({"db_update_frequency": True}, "db_update_frequency must be a number"),
        ({"db_update_propagation": float("nan")}, "db_update_propagation must be a number"),
        ({"worker_consistency": "lazy"}, "worker_consistency must be one of strict, eventual"),
        ({"untrusted_lua": "maybe"}, "untrusted_lua must be one of on, off, sandbox"),
        ({"disabled_plugins": "post-function"}, "disabled_plugins must be a collection"),
    ],
)
def test_bad_values_are_refused_by_name(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_wsgi_app("3.9", configuration=values)


@given(
    frequency=st.floats(min_value=0.01, max_value=60),
    eventual=st.booleans(),
    written_at=st.floats(min_value=0, max_value=2e9),
)
def test_a_plugin_runs_after_the_rebuild_timer_only_when_eventual(
    frequency: float, eventual: bool, written_at: float
) -> None:
    """``kong/runloop/handler.lua``: eventual rebuilds on a timer, strict on the request."""
    conf = NodeConfiguration.for_profile(
        get_profile("2.8"),
        {
            "worker_consistency": "eventual" if eventual else "strict",
            "worker_state_update_frequency": frequency,
        },
    )
    assert runs_from(written_at, conf) == written_at + (frequency if eventual else 0)


def test_a_running_node_can_be_reconfigured_and_shows_it() -> None:
    app = create_wsgi_app("3.4", configuration={"disabled_plugins": ["acl"]})
    app.store.reconfigure(worker_state_update_frequency=0.5, db_update_propagation=1)
    conf = app.store.configuration
    assert conf.worker_state_update_frequency == 0.5 and conf.disabled_plugins == {"acl"}
    shown = conf.shown()
    assert shown["worker_state_update_frequency"] == 0.5 and shown["db_update_propagation"] == 1
    with pytest.raises(ValueError, match="not modelled"):
        app.store.reconfigure(router_update_frequency=1)
    assert app.store.configuration == conf  # a refused change leaves the node as it was
