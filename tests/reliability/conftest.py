"""The reliability suite: ``soak`` variants stay out of the default run.

A test marked ``soak`` runs only when asked for, with ``-m soak`` (or any ``-m`` expression
naming soak) or ``ATTUNE_SOAK=1`` in the environment; otherwise it is deselected, and the
run's header says how to include it.
"""

from __future__ import annotations

import os

import pytest


def soak_requested(config: pytest.Config) -> bool:
    """Whether this run asked for the slow variants."""
    if os.environ.get("ATTUNE_SOAK", "") not in ("", "0"):
        return True
    expression = config.getoption("markexpr", "") or ""
    return "soak" in expression and "not soak" not in expression


def pytest_report_header(config: pytest.Config) -> str | None:
    if soak_requested(config):
        return "reliability: soak variants included"
    return "reliability: soak variants deselected (run them with -m soak or ATTUNE_SOAK=1)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if soak_requested(config):
        return
    soak = [item for item in items if item.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]
