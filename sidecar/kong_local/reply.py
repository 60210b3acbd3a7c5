"""What a route answers (status, JSON body, headers) and how it reads the request body, shared
by the Admin API, service/plugin and Konnect routes without importing one another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sidecar.kong_local.schemas import Body

BodyReader = Callable[[], tuple[Body, bool]]  # -> (fields, came from a form)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
