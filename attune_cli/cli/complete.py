"""Dynamic shell-completion callbacks (stages, workflows, models, providers, formats).

Each callback takes the text typed so far and returns the matching values. They must be fast
and must never fail loudly: no store yet, a locked or corrupt store → no suggestions.
"""

from __future__ import annotations


def complete_stages(incomplete: str) -> list[str]:
    """Stage names from telemetry and ``[routing.stages]``."""
    return []


def complete_workflows(incomplete: str) -> list[str]:
    """Workflow names from telemetry."""
    return []


def complete_models(incomplete: str) -> list[str]:
    """Model ids from the registry and telemetry."""
    return []


def complete_providers(incomplete: str) -> list[str]:
    """Provider names from the registry."""
    return []
