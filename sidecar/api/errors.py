"""Flask wiring for the one JSON error shape (see ``sidecar.errors``)."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.errors import KongError

log = logging.getLogger("kong_canary.api")


def register_error_handlers(app: Flask) -> None:
    """JSON for every error, including routing errors that never reach a blueprint."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):  # type: ignore[no-untyped-def]
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(KongError)
    def _kong_error(exc: KongError):  # type: ignore[no-untyped-def]
        api = from_kong_error(exc)
        return jsonify(api.body()), api.status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):  # type: ignore[no-untyped-def]
        """werkzeug refuses a body past ``request.max_content_length`` while reading it (from
        Content-Length, or counting a chunked body), before any Kong call."""
        setting = g.get("body_limit_setting", "max_body_bytes")
        message = (
            f"the request body is larger than {request.max_content_length} bytes "
            f"(setting {setting})"
        )
        api = ApiError(413, "body_too_large", message, field="body")
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
