"""Test-session setup for the whole repository (unit tests, doctests and lessons)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The lessons (nbval) are slow: ``pytest -m "not slow"`` runs the unit tests and doctests."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
