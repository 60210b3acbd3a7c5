"""Steering for the fuzzer: schema-valid input is rarely *business*-valid (percentages that
sum to 100 under the ceiling, upstreams that exist, signed ramp ids, http-log entries Kong
would send), so each example may swap a generated piece for one that is, and the
interesting answers (200/202, 409, compensation paths) are reached, not only 404/422.
Every swap is a hypothesis draw that can also keep the generated value, so shrinking and
replay stay deterministic."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from schemathesis import Case

from tests.api.fuzz_env import EXECUTION, SEED, UPSTREAMS

FIXTURES = Path(__file__).parent.parent / "fixtures" / "kong"
KEEP = None  # a draw that keeps what schemathesis generated


def _shifted(c: Decimal) -> dict[str, float]:
    return {"stable": float(100 - 2 * c), "baseline": float(c), "canary": float(c)}


VALID_SPLIT = st.one_of(
    st.just({"stable": 100}),
    st.decimals(min_value=0, max_value=25, places=2).map(_shifted),
)
TARGETS = {"baseline": ["10.9.0.2:80"], "canary": ["10.9.0.3:80"]}


def _log_entry() -> dict[str, Any]:
    """One recorded Kong 3.9.3 http-log entry (tests/fixtures), re-aimed at a seed target."""
    batches = json.loads((FIXTURES / "kong-3.9.3-http-log-batches.json").read_text())
    return batches["first_batches"][0]["body"][0]


LOG_ENTRY = _log_entry()
SEED_TARGETS = [(u["name"], t["target"]) for u in SEED["upstreams"] for t in u["targets"]]


@st.composite
def _log_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        upstream, target = draw(st.sampled_from(SEED_TARGETS))
        ip, _, port = target.rpartition(":")
        entry = copy.deepcopy(LOG_ENTRY)
        entry["service"]["host"] = upstream
        entry["tries"][-1].update(ip=ip, port=int(port))
        entry["response"]["status"] = draw(st.sampled_from([200, 404, 503]))
        entries.append(entry)
    return entries


def steer(data: st.DataObject, case: Case, ramp_ids: list[str]) -> None:
    """Swap parts of a generated case, in place, for ones that exist or add up."""
    params = case.path_parameters or {}
    if "upstream" in params:
        params["upstream"] = data.draw(st.sampled_from((*UPSTREAMS, KEEP))) or params["upstream"]
    if "id" in params:
        params["id"] = data.draw(st.sampled_from((*ramp_ids, KEEP))) or params["id"]
    query = case.query if isinstance(case.query, dict) else {}
    if "split" in query:  # a status URL's split, as the sidecar writes it (shares sum to 100)
        query["split"] = (
            data.draw(st.sampled_from(("100,0,0", "95,2.5,2.5", KEEP))) or query["split"]
        )
    body = case.body
    if case.operation.path == "/v1/kong-log":
        case.body = data.draw(st.one_of(_log_batch(), st.just(KEEP))) or body
        return
    if not isinstance(body, dict):
        return
    if "context" in body or case.operation.path.endswith("/cancel"):
        execution = data.draw(st.sampled_from((EXECUTION, KEEP)))
        context = body.get("context")
        if execution:
            context = context if isinstance(context, dict) else {}
            body["context"] = {**context, "execution_id": execution}
    for key in ("split", "expect"):
        if key in body:
            body[key] = data.draw(st.one_of(VALID_SPLIT, st.just(KEEP))) or body[key]
    if "schedule" in body:
        schedule = st.lists(VALID_SPLIT, min_size=1, max_size=4)
        body["schedule"] = data.draw(st.one_of(schedule, st.just(KEEP))) or body["schedule"]
    if ("split" in body or "schedule" in body) and data.draw(st.sampled_from((True, False))):
        body["targets"] = copy.deepcopy(TARGETS)  # addresses Kong accepts, for new variants
