"""``GET /`` of the local Kong: its ``configuration`` is kong.conf's per profile, and the whole
answer is the one the local Kong gave before its node settings became one ``NodeConfiguration``.

``tests/fixtures/kong_local/root-answers.json`` holds the answers the local Kong gave at commit
478eb5b (before the change) for every profile, Enterprise (RBAC) nodes and nodes started with
kong.conf values of their own; node id, hostname and Konnect's trace id are placeholders. The
real Kong 3.4.2 answer recorded in ``tests/fixtures/kong/kong-3.4.2-post-function.json`` is
checked by ``test_post_function.py``; the defaults below are Kong's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from sidecar.kong_local.server import create_wsgi_app

ANSWERS = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures/kong_local/root-answers.json").read_text()
)
CASES = {case["name"]: case for case in ANSWERS["cases"]}

# Kong/kong ``kong/templates/kong_defaults.lua`` at tags 2.8.5, 3.4.2 and 3.9.3:
# ``db_update_frequency = 5``, ``db_update_propagation = 0``, ``worker_state_update_frequency
# = 5``, ``untrusted_lua = sandbox`` in all three; ``worker_consistency = strict`` in 2.8.5,
# ``eventual`` in 3.4.2 and 3.9.3.
KONG_DEFAULTS = {
    "2.8": {"worker_consistency": "strict"},
    "3.4": {"worker_consistency": "eventual"},
    "3.9": {"worker_consistency": "eventual"},
}
SHARED_DEFAULTS = {
    "db_update_frequency": 5,
    "worker_state_update_frequency": 5,
    "untrusted_lua": "sandbox",
    "database": "postgres",
    "role": "traditional",
}


def root_answer(profile: str, kong_conf: dict[str, Any], rbac_token: str | None) -> Any:
    """(status, body) of ``GET /`` on a fresh local Kong, placeholders put in."""
    app = create_wsgi_app(profile, rbac_token=rbac_token, configuration=kong_conf)
    headers = {"Kong-Admin-Token": rbac_token} if rbac_token else {}
    answer = Client(app).get("/", headers=headers)
    text = answer.get_data(as_text=True)
    text = re.sub(r'"instance":"kong:trace:\d+"', '"instance":"<trace>"', text)
    body = json.loads(text)
    if "node_id" in body:
        body["node_id"], body["hostname"] = "<node>", "<hostname>"
    return answer.status_code, body


@pytest.mark.parametrize("name", list(CASES))
def test_root_answer_is_the_one_given_before(name: str) -> None:
    case = CASES[name]
    status, body = root_answer(case["profile"], case["kong_conf"], case.get("rbac_token"))
    assert (status, body) == (case["status"], case["body"])


@pytest.mark.parametrize("profile", list(KONG_DEFAULTS))
def test_configuration_shows_kongs_defaults(profile: str) -> None:
    _, body = root_answer(profile, {}, None)
    expected = {**SHARED_DEFAULTS, **KONG_DEFAULTS[profile]}
    shown = body["configuration"]
    assert {key: shown[key] for key in expected} == expected
    # not shown at its default (0), as before: the sidecar reads a missing value as 0
    assert "db_update_propagation" not in shown
