"""Orca's save-time and plan-time rules over every shipped template and config, and an
``invalid/`` set that must fail, each for its stated reason."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sidecar.spinnaker.orca import plan_templated_pipeline
from sidecar.spinnaker.rules import (
    as_sent,
    check_config,
    check_orca_local,
    check_template,
    type_matches,
)
from tests.spinnaker.conftest import invalid_cases, template_ids


@pytest.mark.parametrize("tid", template_ids())
def test_template_passes_every_rule(tid, committed, webhooks) -> None:
    assert check_template(committed[f"templates/{tid}.json"], webhooks) == []


@pytest.mark.parametrize("tid", template_ids())
def test_sample_config_passes_and_plans(tid, committed) -> None:
    template = committed[f"templates/{tid}.json"]
    config = committed[f"samples/{tid}.json"]
    assert check_config(config, template) == []
    planned = plan_templated_pipeline(template, config)
    leftover = [s for s in planned["stages"] for v in _strings(s) if "templateVariables" in v]
    assert leftover == [], "every templateVariables expression resolves at plan time"


@pytest.mark.parametrize("name", ["orca-local.yml", "orca-local.pre-2026.1.yml"])
def test_orca_local_passes_every_rule(name, committed) -> None:
    assert check_orca_local(committed[name]) == []


def test_kayenta_template_branches_on_the_analysis_status(committed) -> None:
    """Analysis continues on failure; promote needs SUCCEEDED, rollback FAILED_CONTINUE, and
    the rollback branch ends in a stage that fails the execution."""
    stages = {
        s["refId"]: s for s in committed["templates/kong-canary-kayenta.json"]["pipeline"]["stages"]
    }
    for ref in ("analysis1", "analysis2"):
        assert (stages[ref]["continuePipeline"], stages[ref]["failPipeline"]) == (True, False)
        thresholds = stages[ref]["canaryConfig"]["scoreThresholds"]
        assert set(thresholds) == {"marginal", "pass"}
    assert "== 'SUCCEEDED'" in stages["promote"]["stageEnabled"]["expression"]
    assert "FAILED_CONTINUE" in stages["rollback"]["stageEnabled"]["expression"]
    fail = stages["failAfterRollback"]
    assert fail["type"] == "checkPreconditions" and fail["preconditions"][0]["failPipeline"] is True
    assert stages["splitInitial"]["parameterValues"]["targets"].count("templateVariables") == 2


def test_kayenta_template_plans_to_numbers_where_orca_needs_numbers(committed) -> None:
    template = committed["templates/kong-canary-kayenta.json"]
    planned = plan_templated_pipeline(template, committed["samples/kong-canary-kayenta.json"])
    stages = {s["refId"]: s for s in planned["stages"]}
    assert stages["analysis1"]["canaryConfig"]["scoreThresholds"] == {"marginal": 75, "pass": 95}
    assert stages["analysis1"]["canaryConfig"]["lifetimeDuration"] == "PT30M"
    split = stages["splitInitial"]["parameterValues"]
    assert (split["stable"], split["baseline"], split["canary"]) == (95.0, 2.5, 2.5)
    assert stages["splitRamp"]["parameterValues"]["stable"] == 80.0
    assert stages["deployCanary"]["manifests"][0]["spec"]["replicas"] == 1
    # run-time expressions are left for Orca
    assert stages["deployCanary"]["moniker"]["app"] == "${execution.application}"


@pytest.mark.parametrize(
    ("vtype", "value", "ok"),
    [
        ("int", 3, True),
        ("int", 3.0, True),
        ("int", 3.5, False),
        ("int", "3", False),
        ("float", 2.5, True),
        ("float", 2, False),
        ("bool", True, True),
        ("bool", "true", False),
        ("string", "x", True),
        ("list", [], True),
        ("object", {"a": 1}, True),
    ],
)
def test_variable_types_follow_v2_default_variable_assignment(vtype, value, ok) -> None:
    assert type_matches(vtype, value) is ok


def test_spin_and_deck_send_whole_floats_without_the_decimal() -> None:
    """spin (Go maps, encoding/json) and Deck (JSON.stringify) write 10.0 as 10, which
    Orca's Jackson reads as an Integer: a `float` variable then refuses it."""
    assert as_sent({"a": [10.0, 2.5, True, "10.0", -3.0]}) == {"a": [10, 2.5, True, "10.0", -3]}
    assert isinstance(as_sent(10.0), int) and isinstance(as_sent(1e300), float)
    assert type_matches("float", as_sent(10.0)) is False
    assert type_matches("int", as_sent(10.0)) is True


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@given(_JSON)
def test_as_sent_is_what_javascript_json_gives_back(value) -> None:
    """JSON.parse(JSON.stringify(v)) read by Jackson: a whole double below 2**53 comes back
    as an integer, anything else unchanged; applying it twice changes nothing more."""
    sent = as_sent(value)
    assert as_sent(sent) == sent
    assert json.loads(json.dumps(sent)) == sent
    for before, after in zip(_leaves(value), _leaves(sent), strict=True):
        whole = isinstance(before, float) and before.is_integer() and abs(before) < 2**53
        assert type(after) is (int if whole else type(before)) and after == before


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize("percent", [10, 10.0, 2.5, 3])
@pytest.mark.parametrize(
    ("tid", "variable"),
    [
        ("kong-canary-kayenta", "canary_percent"),
        ("kong-canary-kayenta", "ramp_percent"),
        ("kong-canary-ramp-analysis", "ramp_max_percent"),
    ],
)
def test_percent_variables_take_whole_and_decimal_numbers(
    tid, variable, percent, committed
) -> None:
    template = committed[f"templates/{tid}.json"]
    config = copy.deepcopy(committed[f"samples/{tid}.json"])
    config["variables"][variable] = percent
    assert check_config(config, template) == []
    planned = plan_templated_pipeline(template, config)
    values = [v for s in planned["stages"] for v in (s.get("parameterValues") or {}).values()]
    assert 100 - 2 * percent in values


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _resolve(doc: Any, segment: str) -> Any:
    if isinstance(doc, list):
        if "=" in segment:
            key, value = segment.split("=", 1)
            return next(item for item in doc if item.get(key) == value)
        return doc[int(segment)]
    return doc[segment]


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        target = doc
        for segment in parents:
            target = _resolve(target, segment)
        if op["op"] == "remove":
            del target[last]
        else:
            target[last] = op["value"]
    return doc


@pytest.mark.parametrize("path", invalid_cases(), ids=lambda p: p.stem)
def test_invalid_case_fails_for_its_reason(path, committed, webhooks) -> None:
    case = yaml.safe_load(path.read_text())
    if case["kind"] == "template":
        doc = apply_patch(committed[f"templates/{case['base']}.json"], case["patch"])
        problems = check_template(doc, webhooks)
    elif case["kind"] == "config":
        template = apply_patch(
            committed[f"templates/{case['base']}.json"], case.get("template_patch", [])
        )
        doc = apply_patch(committed[f"samples/{case['base']}.json"], case["patch"])
        problems = check_config(doc, template)
    else:
        problems = check_orca_local(apply_patch(committed[case["base"]], case["patch"]))
    assert any(case["expect"] in p for p in problems), problems


def test_invalid_set_is_not_empty() -> None:
    assert len(invalid_cases()) >= 30
