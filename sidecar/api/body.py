"""Request bodies, read whole but never past a cap (413 ``body_too_large``).

werkzeug refuses a Content-Length over ``request.max_content_length`` before reading, but a
chunked body (no Content-Length; gunicorn sets ``wsgi.input_terminated``) is wrapped in a
``LimitedStream`` whose ``readall`` stops *at* the limit and returns what it has: a longer
body comes back cut, and would be answered as invalid JSON. So the stream is allowed one
byte more than the cap, and a body that reaches it is too large.
"""

from __future__ import annotations

from flask import Request, current_app
from werkzeug.exceptions import RequestEntityTooLarge

from sidecar.errors import ApiError


def too_large(limit: int, setting: str) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the request body is larger than {limit} bytes (setting {setting})",
        field="body",
    )


def read_body(request: Request, setting: str = "max_body_bytes") -> bytes:
    """The body, at most the named setting's number of bytes; cached for a second read."""
    limit: int = getattr(current_app.extensions["kong_canary"].settings, setting)
    request.max_content_length = limit + 1
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large(limit, setting) from None
    if len(data) > limit:
        raise too_large(limit, setting)
    return data
