"""``AdaptiveModelRouter``: reads a stage's figures from the telemetry store and decides."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attune_cli.core.clock import now as clock_now
from attune_cli.core.clock import random_source
from attune_cli.core.money import format_usd
from attune_cli.core.performance import ModelPerformance
from attune_cli.core.registry import TIERS, Provider, Registry, next_tier, previous_tier
from attune_cli.core.routing.decide import decide, reference_cost_usd, tier_of
from attune_cli.core.routing.decision import (
    RoutingDecision,
    RoutingStats,
    StageStats,
    TierAdvice,
)
from attune_cli.core.routing.explain import where
from attune_cli.core.routing.settings import DAY_S, HOUR_S, RoutingSettings

if TYPE_CHECKING:
    from attune_cli.core.routing.cache import PerformanceCache
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace


class AdaptiveModelRouter:
    """Chooses a model per (workflow, stage) from recorded history, within caps, and explains it.

    Args:
        store: the telemetry store to read history from.
        registry: the model registry (tiers, providers, tier defaults).
        settings: routing settings; the defaults when omitted.
        clock: returns the current epoch seconds (inject a fake one in tests).
        rng: the random source for exploration (seed it for reproducible runs).
        configured: the providers this machine can call; only their models are chosen
            (None: every provider counts as callable).
        cache: reuse a stage's figures for a moment (``attune serve``); None reads them from
            the store for every decision.
    """

    def __init__(
        self,
        store: TelemetryStore,
        registry: Registry,
        settings: RoutingSettings | None = None,
        *,
        clock: Callable[[], float] = clock_now,
        rng: random.Random | None = None,
        configured: frozenset[str] | None = None,
        cache: PerformanceCache | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.configured = configured
        self.escalate = False
        self.registry = registry
        self.settings = settings or RoutingSettings()
        self.clock = clock
        self.rng = rng or random_source()

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        store: TelemetryStore,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> AdaptiveModelRouter:
        """A router with the workspace's registry, ``[routing]`` settings and configured providers.

        Args:
            workspace: paths, config and registry.
            store: the telemetry store to read.
            environ: the environment for keys and base URLs; ``os.environ`` when None.

        Raises:
            ConfigError: an invalid ``[routing]``, ``[routing.stages]`` or ``[routing.score]``.
            PermissionsError: ``credentials.toml`` is readable by others.
        """
        settings = RoutingSettings.from_config(workspace.config, workspace.paths.config_file)
        router = cls(
            store,
            workspace.registry,
            settings,
            configured=configured_providers(workspace, environ),
        )
        executor = workspace.config.get("executor")
        router.escalate = isinstance(executor, dict) and executor.get("escalate") is True
        return router

    def contradictions(self) -> list[str]:
        """Settings that contradict each other or the registry, one warning each.

        A cap no model can meet, or ``[executor] escalate = true`` with a cost cap that no
        dearer tier fits, is obeyed (nothing is called, nothing escalates), but it is almost
        certainly not what was meant.
        """
        cap = self.settings.max_cost_usd
        if cap is None:
            return []
        priced = [
            (cost, model.id, model.tier)
            for model in self.registry.models.values()
            if (cost := reference_cost_usd(self.registry, model.id)) is not None
        ]
        if not priced:
            return []
        found = []
        cheapest = min(priced)
        if all(cost > cap for cost, _, _ in priced):
            found.append(
                f"routing.max_cost_usd ({format_usd(cap)}) is below the price of every model "
                f"(the cheapest, {cheapest[1]}, costs {format_usd(cheapest[0])} a reference "
                "call): every routed call will be refused"
            )
        elif self.escalate and not any(
            cost <= cap and tier != TIERS[0] for cost, _, tier in priced
        ):
            found.append(
                f"executor.escalate is true, but no model above the {TIERS[0]} tier fits "
                f"routing.max_cost_usd ({format_usd(cap)}): nothing can escalate"
            )
        return found

    def default_tier(self, stage: str) -> str:
        """The stage's default tier: ``[routing.stages]``, built-ins, then ``default_tier``."""
        return self.settings.tier_of_stage(stage)

    def get_best_model(
        self,
        workflow: str | None,
        stage: str,
        max_cost: float | None = None,
        max_latency_ms: float | None = None,
        min_success_rate: float | None = None,
        days: int | None = None,
        explore: bool = False,
        *,
        any_provider: bool = False,
        tier: str | None = None,
    ) -> RoutingDecision:
        """Choose the model for ``stage`` (of ``workflow``, or of every workflow when None).

        Args:
            workflow: the workflow, or None for the stage across all workflows.
            stage: the stage; an unknown one is not an error (no history → tier default).
            max_cost: cap on the average cost per call, USD (default: ``[routing]``).
            max_latency_ms: cap on the p95 latency (default: ``[routing]``).
            min_success_rate: minimum success lower bound, 0..1 (default: ``[routing]``).
            days: the window in days (default: ``[routing] window_days``).
            explore: try a challenger that could be best for ``explore_share`` of such calls,
                and keep one on trial while its newest calls keep it promising (``decide``).
            any_provider: rank every model, callable here or not.
            tier: consider only models of this tier.

        Returns:
            The decision (``attune_cli.core.routing.decide``); ``chosen`` is None when every
            model is over a cap or not configured.

        Raises:
            UsageError: a negative cap, a minimum outside 0..1, or a window under one day.
        """
        settings = self.settings.overridden(
            max_cost_usd=max_cost,
            max_latency_ms=max_latency_ms,
            min_success_rate=min_success_rate,
            window_days=days,
        )
        performances = self._performance(workflow, stage, settings, self.clock(), explore=explore)
        return decide(
            performances,
            self.registry,
            settings,
            self.rng,
            workflow=workflow,
            stage=stage,
            configured=None if any_provider else self.configured,
            explore=explore,
            tier=tier,
        )

    def recommend_tier_upgrade(self, workflow: str | None, stage: str) -> TierAdvice:
        """Tier advice for a stage: upgrade, downgrade or keep, with the figures.

        Upgrade when the stage's newest ``advice_recent_calls`` calls fail more often than
        ``upgrade_failure_rate``. Downgrade when a cheaper tier has ``downgrade_min_calls``
        calls in the window and a success rate within ``downgrade_margin`` of the current
        tier's, with what that saves per 1,000 calls.
        """
        settings = self.settings
        current = self.default_tier(stage)
        recent = self.store.recent_calls(
            workflow=workflow, stage=stage, limit=settings.advice_recent_calls
        )
        failures = sum(1 for call in recent if not call.success)
        failure_rate = failures / len(recent) if recent else None

        def advice(
            kind: str, suggested: str, reason: str, savings: float | None = None
        ) -> TierAdvice:
            return TierAdvice(
                workflow=workflow,
                stage=stage,
                current_tier=current,
                recommendation=kind,
                suggested_tier=suggested,
                reason=reason,
                recent_calls=len(recent),
                recent_failure_rate=failure_rate,
                savings_per_1k_calls_usd=savings,
            )

        if not recent:
            return advice("keep", current, f"no calls recorded for {where(workflow, stage)} yet")
        newest = f"{failures} of the newest {len(recent)} calls failed ({failure_rate:.0%})"
        if failure_rate is not None and failure_rate > settings.upgrade_failure_rate:
            if len(recent) < settings.min_calls:
                return advice(
                    "keep",
                    current,
                    f"{newest}, but {settings.min_calls} calls are needed before advising",
                )
            higher = next_tier(current)
            threshold = f"over the {settings.upgrade_failure_rate:.0%} threshold"
            if higher is None:
                return advice("keep", current, f"{newest}, {threshold}; {current} is the top tier")
            return advice("upgrade", higher, f"{newest}, {threshold}")

        tiers = self._tier_totals(workflow, stage)
        mine = tiers.get(current)
        if mine is None or mine.calls < settings.min_calls:
            return advice(
                "keep", current, f"{newest}; too little {current}-tier history to compare tiers"
            )
        cheaper = previous_tier(current)
        while cheaper is not None:
            other = tiers.get(cheaper)
            if (
                other is not None
                and other.calls >= settings.downgrade_min_calls
                and other.success_rate >= mine.success_rate - settings.downgrade_margin
                and (other.avg_cost_usd or 0.0) < (mine.avg_cost_usd or 0.0)
            ):
                savings = None
                if mine.avg_cost_usd is not None and other.avg_cost_usd is not None:
                    savings = (mine.avg_cost_usd - other.avg_cost_usd) * 1000
                saved = (
                    f", saving {format_usd(savings)} per 1,000 calls" if savings is not None else ""
                )
                return advice(
                    "downgrade",
                    cheaper,
                    f"{cheaper} succeeds {other.success_rate:.1%} over {other.calls:,} calls vs "
                    f"{mine.success_rate:.1%} for {current}{saved}",
                    savings,
                )
            cheaper = previous_tier(cheaper)
        return advice(
            "keep", current, f"{newest}, within the {settings.upgrade_failure_rate:.0%} threshold"
        )

    def check(self, workflow: str | None = None, stage: str | None = None) -> list[TierAdvice]:
        """Tier advice for one stage, or for every (workflow, stage) with calls in the window."""
        if stage is not None:
            return [self.recommend_tier_upgrade(workflow, stage)]
        since = self.clock() - self.settings.window_days * DAY_S
        return [self.recommend_tier_upgrade(w, s) for w, s in self._pairs(workflow, since)]

    def get_routing_stats(
        self, workflow: str | None, stage: str | None = None, days: int | None = None
    ) -> RoutingStats:
        """What happened per (workflow, stage) over the last ``days`` days, and the choice now.

        Args:
            workflow: one workflow, or None for every workflow.
            stage: one stage, or None for every stage with calls in the window.
            days: the window, at least 1; None for ``routing.window_days``, the window of
                every other report.

        Raises:
            UsageError: ``days`` under 1.
        """
        if days is None:
            days = self.settings.window_days
        settings = self.settings.overridden(window_days=days)
        since = self.clock() - days * DAY_S
        pairs = [(workflow, stage)] if stage is not None else list(self._pairs(workflow, since))
        stages = []
        for pair_workflow, pair_stage in pairs:
            models = self._performance(pair_workflow, pair_stage, settings, self.clock())
            if stage is None and not models:
                continue
            models.sort(key=lambda m: m.quality_score, reverse=True)
            decision = self.get_best_model(pair_workflow, pair_stage, days=days)
            stages.append(
                StageStats(
                    workflow=pair_workflow,
                    stage=pair_stage,
                    calls=sum(m.calls for m in models),
                    successes=sum(m.successes for m in models),
                    total_cost_usd=sum((m.avg_cost_usd or 0.0) * m.calls for m in models),
                    best=decision.chosen,
                    default_tier=decision.default_tier,
                    models=models,
                )
            )
        return RoutingStats(workflow=workflow, stage=stage, days=days, stages=stages)

    def _performance(
        self,
        workflow: str | None,
        stage: str,
        settings: RoutingSettings,
        now: float,
        *,
        explore: bool = False,
    ) -> list[ModelPerformance]:
        """The stage's figures; exploring's shorter-memory counts only when ``explore``."""
        half_life = settings.half_life_days
        explore_half_life_s = settings.explore_half_life_hours * HOUR_S if explore else None

        def read() -> list[ModelPerformance]:
            return self.store.model_performance(
                workflow=workflow,
                stage=stage,
                since_ts=now - settings.window_days * DAY_S,
                weights=settings.weights,
                half_life_s=half_life * DAY_S if half_life else None,
                recent_n=settings.recent_calls,
                now=now,
                outage_since_ts=now - settings.outage_memory_hours * HOUR_S,
                explore_half_life_s=explore_half_life_s,
            )

        if self.cache is None:
            return read()
        key = (
            workflow,
            stage,
            settings.window_days,
            half_life,
            settings.weights,
            settings.recent_calls,
            settings.outage_memory_hours,
            explore_half_life_s,
        )
        return self.cache.get(key, read)

    def _tier_totals(self, workflow: str | None, stage: str) -> dict[str, _TierTotal]:
        totals: dict[str, _TierTotal] = {}
        for perf in self._performance(workflow, stage, self.settings, self.clock()):
            tier = tier_of(self.registry, perf.model, perf.tier)
            if tier is None:
                continue
            total = totals.setdefault(tier, _TierTotal())
            total.calls += perf.calls
            total.successes += perf.successes
            if perf.avg_cost_usd is not None:
                total.cost_usd += perf.avg_cost_usd * perf.calls
                total.costed_calls += perf.calls
        return totals

    def _pairs(self, workflow: str | None, since_ts: float) -> list[tuple[str, str]]:
        """The (workflow, stage) pairs with calls since ``since_ts``, sorted."""
        return self.store.pairs(workflow, None, since_ts=since_ts)


@dataclass
class _TierTotal:
    calls: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    costed_calls: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.calls if self.calls else 0.0

    @property
    def avg_cost_usd(self) -> float | None:
        return self.cost_usd / self.costed_calls if self.costed_calls else None


def configured_providers(
    workspace: Workspace, environ: Mapping[str, str] | None = None
) -> frozenset[str]:
    """The providers this machine can call: a key, or an explicit base URL (a local server).

    Raises:
        ConfigError: an invalid credentials file.
        PermissionsError: ``credentials.toml`` is readable by others.
    """
    import os

    from attune_cli.core.credentials import resolve_key
    from attune_cli.core.endpoints import resolve_endpoints

    environment = os.environ if environ is None else environ

    def key_for(provider: Provider) -> str | None:
        resolved = resolve_key(provider, workspace.paths, environment)
        return resolved.value if resolved else None

    endpoints = resolve_endpoints(workspace.registry, workspace.config, environment, key_for)
    return frozenset(name for name, endpoint in endpoints.items() if endpoint.configured)
