"""Flask wiring for the one JSON error shape (see ``sidecar.errors``)."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sidecar.api.body import too_large
from sidecar.core.refusals import Refusal
from sidecar.errors import ApiError, from_kong_error, from_refusal
from sidecar.kong.errors import KongError

log = logging.getLogger("kong_canary.api")


def register_error_handlers(app: Flask) -> None:
    """JSON for every error, including routing errors that never reach a blueprint."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal):  # type: ignore[no-untyped-def]
        """A service's refusal, answered through the one table ``sidecar.errors.REFUSALS``."""
        api = from_refusal(exc)
        return jsonify(api.body()), api.status, api.headers

    @app.errorhandler(KongError)
    def _kong_error(exc: KongError):  # type: ignore[no-untyped-def]
        api = from_kong_error(exc)
        return jsonify(api.body()), api.status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):  # type: ignore[no-untyped-def]
        """A body read past ``MAX_CONTENT_LENGTH`` other than through ``api.body.read_body``
        (which answers this itself, with the setting's name)."""
        api = too_large(current_app.config["MAX_CONTENT_LENGTH"], "max_body_bytes")
        return jsonify(api.body()), api.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        body = {"error": {"code": code, "message": exc.description or exc.name}}
        response = exc.get_response()
        response.data = jsonify(body).get_data()
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        original = getattr(exc, "original_exception", exc)
        log.exception("unhandled error", exc_info=original)
        body = {"error": {"code": "internal", "message": "internal error; see the sidecar's log"}}
        return jsonify(body), 500
