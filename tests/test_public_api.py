"""The public names are pinned: removing or renaming one breaks users' imports."""

from __future__ import annotations

import attune_cli

EXPECTED = {
    "AdaptiveModelRouter",
    "Attune",
    "AuthMode",
    "AuthStrategy",
    "CircuitBreaker",
    "LLMResponse",
    "ModelPerformance",
    "ResilientExecutor",
    "SubscriptionTier",
    "__version__",
}


def test_public_names_are_pinned() -> None:
    assert set(attune_cli.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in attune_cli.__all__:
        assert getattr(attune_cli, name) is not None, name
