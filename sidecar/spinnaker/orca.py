"""An Orca webhook-stage simulator: what Orca would do with our preconfigured stages.

It replays the rules of Orca (spinnaker/spinnaker monorepo, ``orca/``) over real HTTP, so
tests can prove the stages work against the real sidecar. Each rule and its source:

* ``orca-webhook`` ``PreconfiguredWebhookStage.overrideIfNotSetInContextAndOverrideDefault``:
  a non-null admin field wins, otherwise the stage's own value; ``sensitiveHeaders`` never
  enter the context.
* ``orca-queue`` ``StartStageHandler.plan`` then ``StartTaskHandler`` (both
  ``ExpressionAware.withMergedContext``, stored): ``${...}`` in the context is evaluated at
  stage start and **again** at each task start, each pass over the result of the last,
  against the stage context plus ``execution`` and ``trigger`` (``spel.py`` has the
  evaluation rules). The stored context is what the cancel call later sees.
* ``orca-webhook`` ``CreateWebhookTask.execute``: ``WebhookService.getRestTemplateData`` (which
  runs ``UserConfiguredUrlRestrictions.validateURI``, resolving the host first) is called
  *outside* the try, so a host that does not resolve, or is not allowed, is an exception
  of the task: ``RunTaskHandler`` -> not retryable (``DefaultExceptionHandler``) -> TERMINAL.
* ``WebhookResponseProcessor``: failFastStatusCodes -> TERMINAL; 5xx, 429
  (``webhook.defaultRetryStatusCodes``) or webhookRetryStatusCodes -> retry every 10 s
  (``CreateWebhookTask.getBackoffPeriod``) for 5 min (``getTimeout``; it is an
  ``OverridableTimeoutRetryableTask``, so ``stageTimeoutMs`` replaces that); other
  non-2xx/3xx -> TERMINAL; a timeout retries only a GET; any other exception (connection
  refused) -> TERMINAL.
* ``MonitorWebhookTask``: GET every 1 s for a minute then every 15 s, 1 h timeout
  (``stageTimeoutMs`` replaces it); 5xx/429/retryStatusCodes -> keep polling, other HTTP
  errors -> TERMINAL; here ``getWebhookStatus`` (and so ``validateURI``) is *inside* the try:
  an unknown host (cause ``UnknownHostException``) or a socket timeout keeps polling, any
  other exception (connection refused, host not allowed) -> TERMINAL. No statusJsonPath ->
  the first 2xx succeeds; a missing path or a non-scalar -> TERMINAL; a progress path that
  is missing or not a string -> TERMINAL; a number is percent complete (Integer 100
  succeeds); a string is matched case-insensitively and exactly against the status lists
  (terminal > canceled > success), unmapped keeps polling.
* ``RunTaskHandler.checkForStageTimeout``: ``stageTimeoutMs`` also runs from the stage's
  start over all its tasks; a timeout is an exception -> TERMINAL before the mapping below.
* ``RunTaskHandler`` + ``orca-kotlin`` ``Stage.kt`` ``failureStatus``: a TERMINAL task (or an
  exception) becomes FAILED_CONTINUE with ``continuePipeline``, TERMINAL with
  ``failPipeline`` (default true), else STOPPED. A CANCELED task first runs the task's
  ``onCancel`` (``MonitorWebhookTask.onCancel`` -> ``cancelWebhook``), then maps the same
  way with CANCELED as the default.
* ``CompleteStageHandler``: a stage with failed expressions and ``failOnFailedExpressions``
  ends TERMINAL (after its tasks ran: the call was made). A failed stage whose status is a
  halt (TERMINAL, STOPPED; ``ExecutionStatus.isFailure`` and ``isHalt``) plans its
  on-failure stages: ``WebhookStage.onFailureStages`` -> ``cancelWebhook``. FAILED_CONTINUE
  is complete and not a halt, so it takes the success path: **no cancel call**.
* ``WebhookService.cancelWebhook``: best effort, nothing when there is no cancelEndpoint.
  ``RunTaskHandler``: when the execution was cancelled the running task's ``onCancel`` runs;
  when it completed otherwise (another branch failed) the task ends CANCELED without it.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from sidecar.spinnaker.rules import as_sent
from sidecar.spinnaker.spel import Evaluator

SUCCEEDED, RUNNING, TERMINAL, CANCELED = "SUCCEEDED", "RUNNING", "TERMINAL", "CANCELED"
FAILED_CONTINUE, STOPPED, SKIPPED = "FAILED_CONTINUE", "STOPPED", "SKIPPED"
DENIED_HEADERS = {
    "X-SPINNAKER-USER",
    "X-SPINNAKER-ACCOUNT",
    "X-SPINNAKER-USER-ORIGIN",
    "X-SPINNAKER-REQUEST-ID",
    "X-SPINNAKER-EXECUTION-ID",
}
# PreconfiguredWebhookStage.IGNORE_FIELDS: metadata, not stage fields.
_NOT_STAGE_FIELDS = {"enabled", "label", "description", "type", "parameters", "sensitiveHeaders"}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CREATE_BACKOFF_S, CREATE_TIMEOUT_S = 10.0, 300.0
MONITOR_TIMEOUT_S = 3600.0


class HostNotAllowed(ValueError):
    """``validateURI``'s IllegalArgumentException."""


class UnknownHost(HostNotAllowed):
    """``validateURI`` wrapping an ``UnknownHostException`` (the host does not resolve)."""


@dataclass(frozen=True)
class AfterSending:
    """A fault that lets the call reach the server, then loses its answer (``error``)."""

    error: Exception


# A fault a test injects in place of a call: the answer Orca would have seen, or the
# exception its client would have raised (httpx.ConnectError = refused, UnknownHost = DNS),
# or AfterSending (the call landed, Orca saw an error).
Fault = httpx.Response | Exception | AfterSending
Faults = Callable[[str, str], Fault | None]  # (stage refId, call kind) -> fault or None


@dataclass(frozen=True)
class UrlRestrictions:
    """``user-configured-url-restrictions`` with Orca's defaults. ``resolve`` maps a host
    name to an address (injected: tests must not depend on DNS); None = not local; it
    raises ``UnknownHost`` for a name that does not resolve."""

    allowed_hostnames_regex: str = r".*\..+"
    allowed_schemes: tuple[str, ...] = ("http", "https")
    reject_localhost: bool = True
    reject_link_local: bool = True
    reject_verbatim_ips: bool = True
    excluded_domains: tuple[str, ...] = ("spinnaker", "local", "localdomain", "internal")
    resolve: Callable[[str], str | None] = field(
        default=lambda host: "127.0.0.1" if host == "localhost" else None, compare=False
    )

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **kwargs: Any) -> UrlRestrictions:
        config = config or {}
        names = {
            "allowedHostnamesRegex": "allowed_hostnames_regex",
            "allowedSchemes": "allowed_schemes",
            "rejectLocalhost": "reject_localhost",
            "rejectLinkLocal": "reject_link_local",
            "rejectVerbatimIps": "reject_verbatim_ips",
            "excludedDomains": "excluded_domains",
        }
        values = {names[k]: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        return cls(**values, **kwargs)

    def validate(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise HostNotAllowed(f"URI not valid: {url}")
        if parts.scheme.lower() not in self.allowed_schemes:
            raise HostNotAllowed(f"unsupported URI scheme {url}")
        host = (parts.hostname or "").lower()
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and self.reject_verbatim_ips:
            raise HostNotAllowed("Verbatim IP addresses are not allowed")
        address = literal if literal is not None else _ip(self.resolve(host))  # may raise
        is_local = address is not None and address.is_loopback
        is_link_local = address is not None and address.is_link_local
        if (is_local and self.reject_localhost) or (is_link_local and self.reject_link_local):
            raise HostNotAllowed(f"Host not allowed: {host}")
        excluded = any(
            re.fullmatch(rf"(?=.+\.{re.escape(d)}$).*\..+", host) for d in self.excluded_domains
        )
        valid_name = re.fullmatch(self.allowed_hostnames_regex, host) and not excluded
        if not valid_name and literal is None and not (is_local or is_link_local):
            raise HostNotAllowed(f"Host not allowed: {host}")


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return ipaddress.ip_address(value) if value else None


def resolve_placeholders(value: Any, env: Mapping[str, str]) -> Any:
    """Spring's ``${ENV}`` resolution at Orca start-up; unresolvable ones stay as they are
    (that is how ``${parameterValues['x']}`` survives into the stage)."""
    if isinstance(value, Mapping):
        return {k: resolve_placeholders(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_placeholders(v, env) for v in value]
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    return value


def preconfigured_by_type(orca_local: Mapping[str, Any], env: Mapping[str, str]) -> dict:
    items = orca_local["webhook"]["preconfigured"]
    return {item["type"]: resolve_placeholders(item, env) for item in items}


@dataclass
class Call:
    kind: str  # create | monitor | cancel
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    status: int | None = None
    error: str | None = None


@dataclass
class StageRun:
    status: str
    context: dict[str, Any]
    calls: list[Call]
    elapsed_s: float
    execution: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    sensitive: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def webhook(self) -> dict[str, Any]:
        return self.context.get("webhook", {})


def json_path(body: Any, path: str) -> Any:
    """``$.a.b[0]`` over parsed JSON; KeyError when the path is missing (Jayway's
    PathNotFoundException)."""
    if not path.startswith("$"):
        raise KeyError(path)
    current = body
    for name, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path[1:]):
        if name:
            if not isinstance(current, Mapping) or name not in current:
                raise KeyError(path)
            current = current[name]
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                raise KeyError(path)
            current = current[int(index)]
    return current


def failure_status(context: Mapping[str, Any], default: str = TERMINAL) -> str:
    """``Stage.kt`` ``failureStatus``: what a failed task makes of its stage."""
    if context.get("continuePipeline") is True:
        return FAILED_CONTINUE
    if context.get("failPipeline", True) is not False:
        return default
    return STOPPED


class PlanError(ValueError):
    """Orca refuses to plan the templated pipeline (the execution never starts)."""


class StageTimeout(Exception):
    """``RunTaskHandler.checkForTimeout``'s TimeoutException."""


class WebhookStageSimulator:
    """Runs one (preconfigured) webhook stage the way Orca would; time is simulated.

    ``sleep`` receives each backoff in seconds (inject a no-op or a recorder); the
    simulated clock is the sum of backoffs, which drives the 5-minute create timeout, the
    1 s -> 15 s poll schedule, the 1 h monitor timeout and ``stageTimeoutMs``. ``start``
    gives the stage as a generator of backoffs, so a pipeline can interleave stages on one
    simulated clock. ``faults`` (tests) replaces a call's answer by a fault.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        preconfigured: Mapping[str, Mapping[str, Any]] | None = None,
        restrictions: UrlRestrictions | None = None,
        default_retry_status_codes: tuple[int, ...] = (429,),
        sleep: Callable[[float], None] = lambda seconds: None,
        max_polls: int = 10_000,
        faults: Faults | None = None,
    ) -> None:
        self.client = client
        self.preconfigured = dict(preconfigured or {})
        self.restrictions = restrictions or UrlRestrictions()
        self.default_retry = set(default_retry_status_codes)
        self.sleep = sleep
        self.max_polls = max_polls
        self.faults = faults or (lambda ref, kind: None)

    # -- the stage ---------------------------------------------------------------------
    def prepare(self, stage: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Stage context after the admin config is merged in, and the sensitive headers."""
        context = copy.deepcopy(dict(stage))
        admin = self.preconfigured.get(context.get("type", ""))
        sensitive: dict[str, Any] = {}
        if admin is not None:
            if context.get("alias") != "preconfiguredWebhook":
                raise ValueError(
                    f"stage type {context['type']!r} needs alias preconfiguredWebhook "
                    "(NoSuchStageDefinitionBuilderException)"
                )
            for key, value in admin.items():
                if key in _NOT_STAGE_FIELDS:
                    continue
                if context.get(key) is None or value is not None:
                    context[key] = copy.deepcopy(value)
            sensitive = dict(admin.get("sensitiveHeaders") or {})
        context.setdefault("method", "POST")
        context.setdefault("failFastStatusCodes", [504])
        return context, sensitive

    def run(
        self,
        stage: Mapping[str, Any],
        *,
        execution: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> StageRun:
        """The whole stage, sleeping through its backoffs; ``status`` is the stage's."""
        run, steps = self.start(stage, execution=execution, trigger=trigger)
        for backoff in steps:
            self.sleep(backoff)
            run.elapsed_s += backoff
        return run

    def start(
        self,
        stage: Mapping[str, Any],
        *,
        execution: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> tuple[StageRun, Iterator[float]]:
        """The stage started (expressions evaluated, StartStageHandler) and the generator
        that runs it: it yields each backoff; the caller adds it to ``run.elapsed_s``."""
        raw, sensitive = self.prepare(stage)
        if execution is None:
            execution = {"id": "01SIMULATED", "name": "sim", "application": "app"}
        trigger = dict(trigger if trigger is not None else {"user": "anonymous"})
        run = StageRun(RUNNING, raw, [], 0.0)
        run.execution, run.trigger, run.sensitive = dict(execution), trigger, sensitive
        self._evaluate(run)  # StartStageHandler.plan
        return run, self._stage(run)

    def _evaluate(self, run: StageRun) -> None:
        """One ``withMergedContext`` pass, stored (StartStageHandler, StartTaskHandler)."""
        stored = {k: v for k, v in run.context.items() if k != "expressionFailures"}
        evaluator = Evaluator({**stored, "execution": run.execution, "trigger": run.trigger})
        run.context = evaluator.render(stored)
        run.context["expressionFailures"] = evaluator.failures

    def _stage(self, run: StageRun) -> Iterator[float]:
        ctx = run.context
        try:
            self._evaluate(run)  # StartTaskHandler: createWebhook
            status = yield from self._create(run)
            if status == SUCCEEDED and run.context.get("waitForCompletion"):
                self._evaluate(run)  # StartTaskHandler: monitorWebhook
                status = yield from self._monitor(run)
        except StageTimeout as exc:
            run.context["exception"] = str(exc)
            status = TERMINAL
        ctx = run.context
        if status == CANCELED:  # RunTaskHandler: the task's onCancel, then the mapping
            self._cancel(run)
        if status in (TERMINAL, CANCELED):
            status = failure_status(ctx, default=status)
        if ctx.get("expressionFailures") and ctx.get("failOnFailedExpressions") is True:
            status = TERMINAL  # CompleteStageHandler, whatever continuePipeline says
        if status in (TERMINAL, STOPPED):  # CompleteStageHandler -> onFailureStages
            self._cancel(run)
        run.status = status

    def cancel(self, run: StageRun) -> None:
        """The user cancelled the execution while the stage ran (the task's onCancel)."""
        self._cancel(run)

    def _timeouts(self, run: StageRun, task_timeout_s: float) -> float:
        """Seconds this task may run: its own timeout, or ``stageTimeoutMs`` (an
        OverridableTimeoutRetryableTask), capped by what is left of the stage's."""
        override = run.context.get("stageTimeoutMs")
        if isinstance(override, int | float) and not isinstance(override, bool):
            return override / 1000 - run.elapsed_s
        return task_timeout_s

    # -- HTTP --------------------------------------------------------------------------
    def _headers(self, context: Mapping[str, Any], sensitive: Mapping[str, Any]) -> dict:
        headers: dict[str, str] = {}
        for source in (context.get("customHeaders") or {}, sensitive):
            for key, value in source.items():
                if key.upper() in DENIED_HEADERS:
                    continue
                headers[key] = ", ".join(value) if isinstance(value, list) else str(value)
        return headers

    def _send(
        self, run: StageRun, kind: str, method: str, url: str, body: Any
    ) -> tuple[httpx.Response, Call]:
        headers = self._headers(run.context, run.sensitive)
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            headers.setdefault("Content-Type", "text/plain")  # Spring's String converter
        call = Call(kind, method.upper(), url, headers, body)
        run.calls.append(call)
        fault = self.faults(str(run.context.get("refId", "")), kind)
        if isinstance(fault, UnknownHost):
            call.error = str(fault)
            raise fault  # validateURI resolves before anything is sent
        self.restrictions.validate(url)
        if isinstance(fault, Exception):
            call.error = str(fault)
            raise fault
        if isinstance(fault, httpx.Response):
            response = fault
        else:
            response = self.client.request(call.method, url, headers=headers, content=body)
        call.status = response.status_code
        if isinstance(fault, AfterSending):
            call.error = str(fault.error)
            raise fault.error
        return response, call

    def _create(self, run: StageRun) -> Generator[float, None, str]:
        ctx = run.context
        webhook: dict[str, Any] = {}
        ctx["webhook"] = webhook
        method = str(ctx.get("method", "POST")).upper()
        timeout = self._timeouts(run, CREATE_TIMEOUT_S)
        started = run.elapsed_s
        while True:
            try:
                response, _ = self._send(run, "create", method, ctx["url"], ctx.get("payload"))
            except HostNotAllowed as exc:  # validateURI is outside CreateWebhookTask's try
                ctx["exception"] = f"IllegalArgumentException: {exc}"
                return TERMINAL
            except httpx.TimeoutException as exc:
                if method != "GET":
                    webhook["error"] = f"Socket timeout on {method}: {exc}"
                    return TERMINAL
                status = RUNNING
            except httpx.TransportError as exc:  # refused, reset, closed without an answer
                webhook["error"] = f"An exception occurred ... {exc}"
                return TERMINAL
            else:
                status = self._create_status(response, ctx, webhook)
                if status != RUNNING:
                    return status
            if run.elapsed_s - started + CREATE_BACKOFF_S > timeout:
                raise StageTimeout("CreateWebhookTask timed out")
            yield CREATE_BACKOFF_S

    def _create_status(self, response: httpx.Response, ctx: dict, webhook: dict) -> str:
        code = response.status_code
        webhook.update(statusCodeValue=code, headers=dict(response.headers), body=_body(response))
        if 200 <= code < 400:
            if not ctx.get("waitForCompletion"):
                return SUCCEEDED
            url = self._status_url(response, ctx)
            if not url:
                webhook["error"] = (
                    "The status URL couldn't be resolved, but 'Wait for completion' is configured"
                )
                return TERMINAL
            ctx["statusEndpoint"] = webhook["statusEndpoint"] = url
            return SUCCEEDED
        if code in (ctx.get("failFastStatusCodes") or []):
            webhook["error"] = f"Received status code {code}, which is configured to fail fast"
            return TERMINAL
        if (
            code >= 500
            or code in self.default_retry
            or code in (ctx.get("webhookRetryStatusCodes") or [])
        ):
            webhook["error"] = f"status code {code}, will retry."
            return RUNNING
        webhook["error"] = f"Error submitting webhook with status code {code}."
        return TERMINAL

    def _status_url(self, response: httpx.Response, ctx: Mapping[str, Any]) -> str | None:
        resolution = ctx.get("statusUrlResolution")
        if resolution == "getMethod":
            return ctx["url"]
        if resolution == "locationHeader":
            return response.headers.get("Location")
        if resolution == "webhookResponse":
            try:
                value = json_path(_body(response), ctx.get("statusUrlJsonPath") or "")
            except KeyError:
                return None
            return value if isinstance(value, str) else None
        return None

    def _monitor(self, run: StageRun) -> Generator[float, None, str]:
        ctx = run.context
        timeout = self._timeouts(run, MONITOR_TIMEOUT_S)
        started = run.elapsed_s
        retries = {int(k): v.get("maxAttempts", 0) for k, v in (ctx.get("retries") or {}).items()}
        past: list[int] = []
        for _ in range(self.max_polls):
            monitor: dict[str, Any] = {"pastStatusCodes": list(past)}
            ctx["webhook"]["monitor"] = monitor
            status = self._poll(run, monitor, retries, past)
            if status != RUNNING:
                return status
            waited = run.elapsed_s - started
            backoff = 1.0 if waited <= 60 else 15.0
            if waited + backoff > timeout:
                raise StageTimeout("MonitorWebhookTask timed out")
            yield backoff
        return RUNNING

    def _poll(self, run: StageRun, monitor: dict, retries: dict, past: list) -> str:
        ctx = run.context
        try:
            response, _ = self._send(run, "monitor", "GET", ctx["statusEndpoint"], None)
        except UnknownHost:  # inside the try here: cause UnknownHostException -> poll again
            return RUNNING
        except HostNotAllowed as exc:
            monitor["error"] = str(exc)
            return TERMINAL
        except httpx.TimeoutException:
            return RUNNING
        except httpx.TransportError as exc:  # refused (a sidecar pod restarting), reset
            monitor["error"] = f"an exception occurred in webhook monitor: {exc}"
            return TERMINAL
        code = response.status_code
        if code >= 400:
            if code in retries:
                retry = past.count(code) < retries[code]
            else:
                retry = (
                    code >= 500
                    or code in self.default_retry
                    or code in (ctx.get("retryStatusCodes") or [])
                )
            if retry:
                past.append(code)
                monitor["pastStatusCodes"] = list(past)
                return RUNNING
            monitor["error"] = f"an exception occurred in webhook monitor: {code}"
            return TERMINAL
        body = _body(response)
        monitor.update(statusCodeValue=code, body=body)
        path = ctx.get("statusJsonPath")
        if not path:
            return SUCCEEDED
        try:
            result = json_path(body, path)
        except KeyError:
            monitor["error"] = (
                f"Unable to parse status: JSON property '{path}' not found in response body"
            )
            return TERMINAL
        if not isinstance(result, str | int | float | bool) or result is None:
            monitor["error"] = f"The json path '{path}' did not resolve to a single value"
            return TERMINAL
        if ctx.get("progressJsonPath"):
            try:
                progress = json_path(body, ctx["progressJsonPath"])
            except KeyError:
                monitor["error"] = (
                    "Unable to parse progress: JSON property not found in response body"
                )
                return TERMINAL
            if not isinstance(progress, str):
                monitor["error"] = (
                    f"The json path '{ctx['progressJsonPath']}' did not resolve to a String value"
                )
                return TERMINAL
            monitor["progressMessage"] = progress
        if isinstance(result, int | float) and not isinstance(result, bool):
            monitor["percentComplete"] = result
            return SUCCEEDED if result == 100 and isinstance(result, int) else RUNNING
        mapping: dict[str, str] = {}
        for statuses, outcome in (
            (ctx.get("successStatuses"), SUCCEEDED),
            (ctx.get("canceledStatuses"), CANCELED),
            (ctx.get("terminalStatuses"), TERMINAL),
        ):
            for item in (statuses or "").split(","):
                if item.strip():
                    mapping[item.strip().upper()] = outcome
        text = ("true" if result else "false") if isinstance(result, bool) else str(result)
        return mapping.get(text.upper(), RUNNING)

    def _cancel(self, run: StageRun) -> None:
        ctx = run.context
        if not ctx.get("cancelEndpoint"):
            return  # getRestTemplateData finds no URL: "Cannot determine rest template"
        method = str(ctx.get("cancelMethod") or "POST")
        with contextlib.suppress(HostNotAllowed, httpx.HTTPError):  # best effort, logged
            self._send(run, "cancel", method, ctx["cancelEndpoint"], ctx.get("cancelPayload"))


def _body(response: httpx.Response) -> Any:
    """Orca keeps JSON as a map and anything else as a string."""
    try:
        return response.json()
    except ValueError:
        return response.text


def plan_templated_pipeline(
    template: Mapping[str, Any], config: Mapping[str, Any], trigger: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What ``V2Util.planPipeline`` does to the template's pipeline: variables are the
    config's, else the template defaults (a nullable variable with neither is absent, and
    reads as null); SpEL is evaluated against ``templateVariables``
    and ``trigger`` only, so run-time expressions (``#stage``, ``execution``) stay raw.
    Both documents are taken as Front50 stores them after ``spin``/Deck (``as_sent``)."""
    template, config = as_sent(template), as_sent(config)
    given = config.get("variables", {})
    variables = {  # V2DefaultVariableAssignmentTransform.configurationVariables
        v["name"]: given.get(v["name"], v.get("defaultValue"))
        for v in template.get("variables") or []
        if v["name"] in given or v.get("defaultValue") is not None
    }
    if any(value is None for value in variables.values()):
        # configurationVariables collects with Collectors.toMap, which throws on a null value
        raise PlanError("NullPointerException: a variable given as null (leave it out instead)")
    evaluator = Evaluator({"templateVariables": variables, "trigger": dict(trigger or {})})
    pipeline = evaluator.render(copy.deepcopy(dict(template["pipeline"])))
    failed = [k for k in evaluator.failed_keys if k.startswith("templateVariables.")]
    if failed:  # V2Util.planPipeline: PipelineTemplateValidationException
        raise PlanError(f"Missing template variable values for the following variables: {failed}")
    pipeline["application"] = config.get("application")
    pipeline["name"] = config.get("name")
    return pipeline
