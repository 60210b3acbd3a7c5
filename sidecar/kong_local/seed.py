"""Seed data: what the embedded Kong holds at start, and loading it from YAML/JSON."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SEED: dict[str, Any] = {
    "upstreams": [
        {
            "name": "orders",
            "algorithm": "round-robin",
            "targets": [
                {"target": "127.0.0.1:9111", "weight": 100, "tags": ["variant=stable"]},
            ],
        }
    ]
}


def default_seed() -> dict[str, Any]:
    """A fresh copy, so a caller mutating it cannot change the next server's start state."""
    return copy.deepcopy(DEFAULT_SEED)


def load_seed(path: str | Path) -> dict[str, Any]:
    """YAML (or JSON): ``upstreams: [{name, …, targets: [{target, weight, tags}]}]``."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not isinstance(data.get("upstreams", []), list):
        raise ValueError(f"{path}: expected a mapping with an 'upstreams' list")
    return data
