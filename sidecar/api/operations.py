"""Each view's OpenAPI operation, written next to the view; the document's ``paths`` are
built from the app's url_map (``paths_of``), so a route and its documentation cannot differ.

A view is documented with ``@operation(...)`` under its route decorator::

    @bp.get("/<upstream>/split")
    @operation("Read the split", responses={**ok("SplitView", "the split"), **errors(401)})
    def read_split(upstream): ...

Path parameters are not written by hand: their names come from the rule's converters
(``<upstream>`` is ``{upstream}``), their schema and description from ``PATH_PARAMETERS``.
A route without an operation, or with a path parameter nobody described, makes the
document fail to build: the contract is written once, and nothing is left out of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask

from sidecar.core.names import UPSTREAM_NAME_PATTERN

View = TypeVar("View", bound=Callable[..., Any])
ATTRIBUTE = "openapi_operation"
UNDOCUMENTED_METHODS = frozenset({"HEAD", "OPTIONS"})  # Flask adds them to every rule
# ``<converter(args):name>`` or ``<name>`` in a werkzeug rule (werkzeug/routing/rules.py)
_RULE_PARAMETER = re.compile(r"<(?:(?P<converter>[^:<>(]+)(?:\([^)]*\))?:)?(?P<name>[^<>:]+)>")
_STRING_CONVERTERS = frozenset({None, "default", "string"})

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "upstream": {
        "schema": {"type": "string", "pattern": UPSTREAM_NAME_PATTERN},
        "description": "Kong upstream name or id",
    },
    "ramp_id": {
        "schema": {"type": "string"},
        "description": "ramp id as returned when the ramp started",
    },
}
BEARER = [{"bearer": []}]
ERROR_MEANINGS = {
    400: "the body is not JSON (Orca: fail fast)",
    401: "no or invalid API token",
    403: "the token may not do this, or not on this upstream",
    404: "Kong has no such upstream",
    409: "refused: expect mismatch, unhealthy target, or a target of unknown variant; "
    "or concurrent_change: Kong read back after the change differs (someone else changed "
    "the upstream meanwhile)",
    413: "the body is larger than max_body_bytes (code body_too_large)",
    422: "the body breaks a rule; error.field names the field",
    502: "Kong answered with an error (credentials, read-only node, half-applied change "
    "that was undone)",
    503: "Kong is unreachable or timed out; overloaded: the sidecar is busy with requests "
    "waiting on Kong (Retry-After); upstream_busy: another change of this upstream held "
    "its lock for lock_wait seconds; window_not_live: a canary's first change waits for "
    "the gateway metrics window to run in Kong, which would take longer than "
    "gateway_live_wait (error.details.retry_after; nothing moved); Orca retries",
}


@dataclass(frozen=True)
class Operation:
    """What the document says about one view (OpenAPI 3.1 Operation Object, less the path
    parameters, which the rule gives). ``public``: no token needed (no ``security``)."""

    summary: str
    responses: Mapping[str, Any]
    description: str | None = None
    request_body: Mapping[str, Any] | None = None
    query: tuple[Mapping[str, Any], ...] = ()
    public: bool = False

    def document(self, path_parameters: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": self.summary}
        if self.description is not None:
            out["description"] = self.description
        parameters = [*path_parameters, *self.query]
        if parameters:
            out["parameters"] = parameters
        if not self.public:
            out["security"] = BEARER
        if self.request_body is not None:
            out["requestBody"] = self.request_body
        out["responses"] = dict(self.responses)
        return out


def operation(
    summary: str,
    *,
    responses: Mapping[str, Any],
    description: str | None = None,
    request_body: Mapping[str, Any] | None = None,
    query: Iterable[Mapping[str, Any]] = (),
    public: bool = False,
) -> Callable[[View], View]:
    """Attach the view's operation; the view itself is returned unchanged."""
    described = Operation(summary, responses, description, request_body, tuple(query), public)
    return documented(described)


def documented(described: Operation) -> Callable[[View], View]:
    """Attach an operation built elsewhere (several views sharing one shape)."""

    def attach(view: View) -> View:
        setattr(view, ATTRIBUTE, described)
        return view

    return attach


def ok(schema: str, description: str) -> dict[str, Any]:
    """``{"200": …}``: a JSON answer of the named component schema."""
    return {"200": json_response(schema, description)}


def json_response(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def text_response(mimetype: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {mimetype: {"schema": {"type": "string"}}}}


def errors(*statuses: int) -> dict[str, Any]:
    """The error answers (the one JSON error shape) for these statuses, in the usual words;
    an operation whose status means something more adds its own ``json_response("Error", …)``."""
    return {str(s): json_response("Error", ERROR_MEANINGS[s]) for s in statuses}


def request_body(schema: str, *, required: bool) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"required": required, "content": {"application/json": {"schema": ref}}}


def path_template(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path of a werkzeug rule and its path parameters, from its converters."""
    parameters = []
    for match in _RULE_PARAMETER.finditer(rule):
        name, converter = match["name"], match["converter"]
        if converter not in _STRING_CONVERTERS:
            raise LookupError(f"{rule}: converter {converter!r} has no OpenAPI schema here")
        if name not in PATH_PARAMETERS:
            raise LookupError(f"{rule}: path parameter {name!r} is not in PATH_PARAMETERS")
        parameters.append({"name": name, "in": "path", "required": True, **PATH_PARAMETERS[name]})
    return _RULE_PARAMETER.sub(lambda m: "{" + m["name"] + "}", rule), parameters


def paths_of(app: Flask) -> dict[str, dict[str, Any]]:
    """The document's ``paths``: one operation per rule and method the app serves."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        described = getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None)
        if not isinstance(described, Operation):
            raise LookupError(f"view {rule.endpoint} ({rule.rule}) has no @operation")
        template, parameters = path_template(rule.rule)
        for method in sorted(set(rule.methods or ()) - UNDOCUMENTED_METHODS):
            ops = paths.setdefault(template, {})
            if method.lower() in ops:
                raise LookupError(f"{method} {template} is served by two views")
            ops[method.lower()] = described.document(parameters)
    return paths


def change_operation(summary: str, body: str, *, required: bool) -> Operation:
    """Set split, rollback, promote: a change of the upstream's weights (``Change``)."""
    return Operation(
        summary,
        request_body=request_body(body, required=required),
        responses={
            "200": json_response("Change", "the change made (or planned, with dry_run)"),
            **errors(400, 401, 403, 404, 409, 413, 422, 502),
            "503": json_response(
                "Error",
                "Kong is unreachable or timed out, or (wait_strict) the applied change did not "
                "reach every node in time: code propagation_timeout, details.propagation. "
                "Orca retries; the retry is idempotent and waits again",
            ),
        },
    )
