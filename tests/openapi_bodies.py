"""The one way the tests check a response body against the sidecar's OpenAPI document: with
the checker of the formats it declares (``sidecar.api.formats``), so a ``date-time`` or
``uri`` in the document is enforced wherever a body is checked, not only where someone
remembered to pass the checker."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from sidecar.api.formats import FORMAT_CHECKER


def check_body(doc: dict[str, Any], schema: dict[str, Any], body: Any) -> None:
    """``body`` against ``schema`` (a schema of ``doc``, ``$ref``s into its components);
    raises ``jsonschema.ValidationError``."""
    validator = Draft202012Validator(
        {**schema, "components": doc["components"]}, format_checker=FORMAT_CHECKER
    )
    validator.validate(body)
