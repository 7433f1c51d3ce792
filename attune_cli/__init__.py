"""attune: adaptive model routing, credentials and resilient calls for LLM workflows.

The public names below are imported on first use, so ``import attune_cli`` (and therefore every
start of the CLI) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
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
]

_LAZY = {
    "Attune": "attune_cli.api",
    "AuthMode": "attune_cli.core.auth",
    "AuthStrategy": "attune_cli.core.auth",
    "SubscriptionTier": "attune_cli.core.auth",
    "ModelPerformance": "attune_cli.core.performance",
    "AdaptiveModelRouter": "attune_cli.core.routing",
    "CircuitBreaker": "attune_cli.core.breaker.sqlite",
    "ResilientExecutor": "attune_cli.core.executor",
    "LLMResponse": "attune_cli.core.response",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'attune_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
