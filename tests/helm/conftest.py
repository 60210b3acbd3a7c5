"""Fixtures for the chart tests: one loaded chart per session, renders per scenario."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import CHART_DIR, Rendered, render, scenario_names, scenario_values


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture
def render_with(chart: helm.Chart) -> Callable[..., Rendered]:
    """render_with(values, release=..., namespace=...) -> Rendered."""

    def _render(values: dict[str, Any] | None = None, **kwargs: Any) -> Rendered:
        return render(chart, values, **kwargs)

    return _render


@pytest.fixture(scope="session")
def scenario_renders(chart: helm.Chart) -> dict[str, Rendered]:
    """Each ci/ scenario rendered once; tests only read them."""
    return {name: render(chart, scenario_values(name)) for name in scenario_names()}
