"""An Orca pipeline simulator: a planned pipeline's stage graph on one simulated clock.

``orca.py`` plays one webhook stage; this plays the execution around it, so tests can fail
any stage of a template and see what the whole pipeline does. Rules, from the
spinnaker/spinnaker monorepo:

* ``orca/orca-kotlin`` ``Stage.kt`` ``allUpstreamStagesComplete``: a stage starts once every
  requisite stage is SUCCEEDED, FAILED_CONTINUE or SKIPPED (``CompleteStageHandler`` ->
  ``startNext`` -> ``StartStageHandler``).
* ``orca/orca-core`` ``OptionalStageSupport`` (``ExpressionOptionalStageEvaluator``):
  ``stageEnabled: {type: expression}`` is evaluated when the stage starts; false -> SKIPPED.
  Supported: ``#stage('name')['status'].toString() == '...'`` (``!=``) joined by ``&&`` /
  ``||``, and ``true``/``false`` (a ``${templateVariables...}`` part the plan folded:
  ``V2Util.planPipeline`` under SpEL v3, which this simulator plans as; under v4
  ``StartStageHandler.shouldSkip`` folds it through ``withMergedContext``); ``#stage`` finds
  the stage by name, an unknown name is an error here.
* ``orca/orca-queue`` ``CompleteStageHandler``: SUCCEEDED, FAILED_CONTINUE and SKIPPED start
  the next stages; TERMINAL, CANCELED and STOPPED end their branch.
* ``CompleteExecutionHandler.determineFinalStatus``: every stage SUCCEEDED/SKIPPED/
  FAILED_CONTINUE -> SUCCEEDED; any TERMINAL -> TERMINAL; any CANCELED -> CANCELED; STOPPED
  waits for the other branches, then SUCCEEDED (TERMINAL with
  ``completeOtherBranchesThenFail``). A failed execution cancels its running stages:
  ``CancelStageHandler`` re-runs their task, ``RunTaskHandler`` finds the execution complete
  and ends it CANCELED **without** the task's ``onCancel`` (no webhook cancel call). A user
  cancel (``execution.isCanceled``) does run ``onCancel``.
* ``RunTaskHandler`` + ``Stage.kt`` ``failureStatus`` for a failing task of a native stage;
  ``ExpressionPreconditionTask``: an ``expression`` precondition that is not ``true`` ->
  TERMINAL (it maps the context to a String field, so a Boolean the plan folded reads as
  ``"true"``).

Native stages are models of their effect only: ``deployManifest`` applies its manifests to
a ``Cluster`` (also when it then fails: a rollout that never becomes stable still left its
objects), ``deleteManifest`` deletes by name or by label (a missing object is fine:
clouddriver ``KubectlJobExecutor.delete`` passes ``--ignore-not-found``), ``kayentaCanary``
runs its ``lifetimeDuration`` and passes unless failed, ``wait`` waits ``waitTime``.
"""

from __future__ import annotations

import ast
import heapq
import itertools
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.spinnaker.orca import (
    CANCELED,
    FAILED_CONTINUE,
    RUNNING,
    SKIPPED,
    STOPPED,
    SUCCEEDED,
    TERMINAL,
    Faults,
    StageRun,
    WebhookStageSimulator,
    failure_status,
)
from sidecar.spinnaker.spel import to_text

NOT_STARTED = "NOT_STARTED"
GOES_ON = (SUCCEEDED, FAILED_CONTINUE, SKIPPED)  # allUpstreamStagesComplete
DEPLOY_S, DELETE_S = 30.0, 5.0  # how long the native stages take (simulated)
_STAGE_STATUS = re.compile(r"#stage\(\s*'([^']*)'\s*\)\['status'\]\.toString\(\)")
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


@dataclass
class SimulatedClock:
    """Seconds since the execution started, plus a wall-clock base for the sidecar."""

    base: float = 1_900_000_000.0
    now: float = 0.0

    def __call__(self) -> float:
        return self.base + self.now


@dataclass
class Cluster:
    """The Kubernetes objects the pipeline's manifest stages made: (kind, name) -> labels."""

    labels: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @property
    def objects(self) -> set[tuple[str, str]]:
        return set(self.labels)

    def apply(self, manifests: list[Mapping[str, Any]]) -> None:
        for manifest in manifests:
            key = (manifest["kind"].lower(), manifest["metadata"]["name"])
            self.labels[key] = dict(manifest["metadata"].get("labels") or {})

    def delete(self, stage: Mapping[str, Any]) -> None:
        """``deleteManifest``: ``mode: static`` names one object ("kind name"); ``mode:
        label`` deletes every object of ``kinds`` matching all ``labelSelectors.selectors``
        (clouddriver ``KubernetesDeleteManifestDescription``, ``KubernetesSelector``:
        ANY, EQUALS, NOT_EQUALS, CONTAINS, NOT_CONTAINS, EXISTS, NOT_EXISTS)."""
        if stage.get("mode") == "label":
            kinds = {k.lower() for k in stage.get("kinds") or []}
            selectors = (stage.get("labelSelectors") or {}).get("selectors") or []
            for key in [k for k in self.labels if k[0] in kinds]:
                if all(_selects(s, self.labels[key]) for s in selectors):
                    del self.labels[key]
            return
        kind, name = stage["manifestName"].split(" ", 1)
        self.labels.pop((kind.lower(), name), None)


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    kind, key = selector.get("kind"), selector.get("key")
    values = [str(v) for v in selector.get("values") or []]
    tests = {
        "ANY": lambda: True,
        "EQUALS": lambda: labels.get(key) == (values[0] if values else None),
        "NOT_EQUALS": lambda: labels.get(key) != (values[0] if values else None),
        "CONTAINS": lambda: labels.get(key) in values,
        "NOT_CONTAINS": lambda: labels.get(key) not in values,
        "EXISTS": lambda: key in labels,
        "NOT_EXISTS": lambda: key not in labels,
    }
    if kind not in tests:
        raise ValueError(f"unknown label selector kind {kind!r}")
    return tests[kind]()


@dataclass
class ExecutionResult:
    status: str
    stages: dict[str, str]  # refId -> status
    runs: dict[str, StageRun]  # webhook stages that ran
    elapsed_s: float
    ended_at: dict[str, float] = field(default_factory=dict)  # refId -> seconds from start


def condition_holds(expression: str, status_of: Callable[[str], str]) -> bool:
    """A ``stageEnabled`` expression over ``#stage('name')['status']``."""
    text = _STAGE_STATUS.sub(lambda m: repr(status_of(m.group(1))), expression)
    text = text.replace("&&", " and ").replace("||", " or ")
    return bool(_boolean(ast.parse(text.strip(), mode="eval").body))


def _boolean(node: ast.AST) -> Any:
    if isinstance(node, ast.BoolOp):
        values = [_boolean(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _boolean(node.left), _boolean(node.comparators[0])
        if isinstance(node.ops[0], ast.Eq):
            return left == right
        if isinstance(node.ops[0], ast.NotEq):
            return left != right
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("true", "false"):
        return node.id == "true"
    raise ValueError(f"unsupported stageEnabled expression: {ast.unparse(node)}")


def lifetime_s(stage: Mapping[str, Any]) -> float:
    match = _DURATION.match(str((stage.get("canaryConfig") or {}).get("lifetimeDuration", "")))
    if not match:
        raise ValueError(f"stage {stage.get('refId')}: lifetimeDuration is not PT#H#M#S")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


class PipelineSimulator:
    """Runs a planned pipeline (``plan_templated_pipeline``): webhook stages through the
    ``WebhookStageSimulator`` (real HTTP), native stages as models, all on ``clock``.
    ``faults(refId, kind)`` fails a stage: kinds ``create``/``monitor``/``cancel`` for
    webhook calls (see ``orca.Faults``), ``task`` (any non-None) for a native stage."""

    def __init__(
        self,
        webhooks: WebhookStageSimulator,
        cluster: Cluster,
        clock: SimulatedClock,
        *,
        faults: Faults | None = None,
        execution: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.cluster = cluster
        self.clock = clock
        self.faults = faults or (lambda ref, kind: None)
        self.webhooks.faults = self.faults
        self.execution = dict(
            execution or {"id": "01PIPELINE", "name": "sim", "application": "app"}
        )
        self.trigger = dict(trigger or {"user": "jane"})

    def run(
        self, pipeline: Mapping[str, Any], *, cancel_at: float | None = None
    ) -> ExecutionResult:
        """The execution to its end; ``cancel_at`` (seconds) is a user's cancel."""
        stages = {s["refId"]: s for s in pipeline["stages"]}
        by_name = {s["name"]: ref for ref, s in stages.items()}
        status = dict.fromkeys(stages, NOT_STARTED)
        runs: dict[str, StageRun] = {}
        ended_at: dict[str, float] = {}
        steps: dict[str, Iterator[float]] = {}
        queue: list[tuple[float, int, str]] = []
        order = itertools.count()
        started = self.clock.now

        def status_of(name: str) -> str:
            if name not in by_name:
                raise ValueError(f"#stage({name!r}): no such stage")
            return status[by_name[name]]

        def start(ref: str) -> None:
            stage = stages[ref]
            enabled = stage.get("stageEnabled")
            if enabled and not condition_holds(enabled["expression"], status_of):
                status[ref] = SKIPPED
                ended_at[ref] = self.clock.now - started
                finished(ref)
                return
            status[ref] = RUNNING
            if stage.get("type") in self.webhooks.preconfigured or stage.get("type") == "webhook":
                run, steps[ref] = self.webhooks.start(
                    stage, execution=self.execution, trigger=self.trigger
                )
                runs[ref] = run
            else:
                steps[ref] = self._native(stage)
            heapq.heappush(queue, (self.clock.now, next(order), ref))

        def finished(ref: str) -> None:
            if status[ref] not in GOES_ON:
                return
            for other, stage in stages.items():
                requisites = stage.get("requisiteStageRefIds") or []
                if (
                    ref in requisites
                    and status[other] == NOT_STARTED
                    and all(status[r] in GOES_ON for r in requisites)
                ):
                    start(other)

        for ref, stage in stages.items():
            if not stage.get("requisiteStageRefIds"):
                start(ref)
        final: str | None = None
        while queue and final is None:
            at, _, ref = heapq.heappop(queue)
            if cancel_at is not None and at - started > cancel_at:
                self.clock.now = started + cancel_at
                for running in [r for r, s in status.items() if s == RUNNING]:
                    if running in runs:
                        self.webhooks.cancel(runs[running])  # execution.isCanceled: onCancel
                    status[running] = CANCELED
                final = CANCELED
                break
            self.clock.now = max(self.clock.now, at)
            try:
                backoff = next(steps[ref])
            except StopIteration as stop:
                status[ref] = runs[ref].status if ref in runs else stop.value
                ended_at[ref] = self.clock.now - started
                finished(ref)
                final = self._final_status(stages, status, done=False)
                continue
            if ref in runs:
                runs[ref].elapsed_s += backoff
            heapq.heappush(queue, (self.clock.now + backoff, next(order), ref))
        if final is None:
            final = self._final_status(stages, status, done=True)
        for ref, state in status.items():
            if state == RUNNING:  # CancelStage: RunTaskHandler sees a complete execution
                steps[ref].close()
                status[ref] = CANCELED
        return ExecutionResult(final or TERMINAL, status, runs, self.clock.now - started, ended_at)

    @staticmethod
    def _final_status(
        stages: Mapping[str, Mapping[str, Any]], status: Mapping[str, str], *, done: bool
    ) -> str | None:
        """CompleteExecutionHandler.determineFinalStatus; None while it would re-queue."""
        values = list(status.values())
        if TERMINAL in values:
            return TERMINAL
        if CANCELED in values:
            return CANCELED
        if not done:
            return None
        if STOPPED in values:
            fail = any(
                stages[r].get("completeOtherBranchesThenFail")
                for r, s in status.items()
                if s == STOPPED
            )
            return TERMINAL if fail else SUCCEEDED
        return SUCCEEDED if all(v in GOES_ON or v == NOT_STARTED for v in values) else TERMINAL

    def _native(self, stage: Mapping[str, Any]) -> Generator[float, None, str]:
        kind = stage.get("type")
        failed = self.faults(str(stage.get("refId")), "task") is not None
        if kind == "deployManifest":
            self.cluster.apply(stage.get("manifests") or [])
            yield DEPLOY_S
        elif kind == "deleteManifest":
            yield DELETE_S
            if not failed:
                self.cluster.delete(stage)
        elif kind == "kayentaCanary":
            yield lifetime_s(stage)
        elif kind == "wait":
            yield float(stage.get("waitTime") or 0)
        elif kind == "checkPreconditions":
            # ExpressionPreconditionTask maps the context to a String field (a Boolean folded
            # by the planner reads as "true"/"false") and wraps it in ${}
            failed = failed or any(
                to_text((p.get("context") or {}).get("expression", "false")).strip() != "true"
                for p in stage.get("preconditions") or []
            )
        else:
            raise ValueError(f"stage {stage.get('refId')}: no model for stage type {kind!r}")
        return failure_status(stage) if failed else SUCCEEDED
