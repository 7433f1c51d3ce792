"""A known history for the router tests: calls of a model at a fixed ``NOW``, and a router."""

from __future__ import annotations

from pathlib import Path

from attune_cli.core.registry import load_registry
from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0
REGISTRY = load_registry({}, Path("config.toml"))


def router(store: TelemetryStore, **settings: object) -> AdaptiveModelRouter:
    return AdaptiveModelRouter(
        store,
        REGISTRY,
        RoutingSettings(**settings),
        clock=lambda: NOW,  # type: ignore[arg-type]
    )


def calls(
    model: str,
    n: int,
    *,
    failures: int = 0,
    workflow: str = "code-review",
    stage: str = "analysis",
    latency_ms: float | None = 1000.0,
    cost_usd: float | None = 0.001,
    days_ago: float = 1.0,
    spread_days: float = 0.5,
    failures_last: bool = False,
    failure_status: int | None = None,
) -> list[CallRecord]:
    """``n`` calls of ``model``, oldest first, evenly spread; ``failures`` of them failed.

    Failures are spread evenly through the calls, or put at the newest end with
    ``failures_last``. They are quality failures (long memory) unless ``failure_status`` gives
    them an HTTP status (500: an outage, 429: a rate limit).
    """
    start = NOW - days_ago * DAY
    result = []
    for i in range(n):
        if failures_last:
            failed = i >= n - failures
        else:
            failed = failures > 0 and (i * failures) // n != ((i + 1) * failures) // n
        result.append(
            CallRecord(
                workflow=workflow,
                stage=stage,
                model=model,
                success=not failed,
                ts=start + spread_days * DAY * i / max(n, 1),
                latency_ms=latency_ms,
                cost_usd=cost_usd,
                error_kind=None,
                status=(failure_status if failed else 200),
            )
        )
    return result
