"""``AdaptiveModelRouter``: reads a stage's figures from the telemetry store and decides."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.clock import now as clock_now
from attune_cli.core.errors import ConfigError, UsageError
from attune_cli.core.money import format_usd
from attune_cli.core.performance import ModelPerformance, wilson_lower_bound
from attune_cli.core.registry import TIERS, Registry, next_tier, normalise_tier, previous_tier
from attune_cli.core.routing.decision import (
    CHALLENGER_DRAWS,
    NO_HISTORY,
    TOO_FEW_CALLS,
    Candidate,
    RoutingDecision,
    RoutingStats,
    StageStats,
    TierAdvice,
)
from attune_cli.core.routing.explain import _reason, _where, _with_changes
from attune_cli.core.routing.settings import DAY_S, RoutingSettings

if TYPE_CHECKING:
    from attune_cli.core.telemetry import TelemetryStore
    from attune_cli.core.workspace import Workspace


class AdaptiveModelRouter:
    """Chooses a model per (workflow, stage) from recorded history, within caps, and explains it.

    Args:
        store: the telemetry store to read history from.
        registry: the model registry (tiers, providers, tier defaults).
        settings: routing settings; the defaults when omitted.
        clock: returns the current epoch seconds (inject a fake one in tests).
        rng: the random source for exploration (seed it for reproducible runs).
    """

    def __init__(
        self,
        store: TelemetryStore,
        registry: Registry,
        settings: RoutingSettings | None = None,
        *,
        clock: Callable[[], float] = clock_now,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings or RoutingSettings()
        self.clock = clock
        self.rng = rng or random.Random()

    @classmethod
    def from_workspace(cls, workspace: Workspace, store: TelemetryStore) -> AdaptiveModelRouter:
        """A router with the workspace's registry and its ``[routing]`` settings.

        Raises:
            ConfigError: an invalid ``[routing]``, ``[routing.stages]`` or ``[routing.score]``.
        """
        settings = RoutingSettings.from_config(workspace.config, workspace.paths.config_file)
        return cls(store, workspace.registry, settings)

    def default_tier(self, stage: str) -> str:
        """The stage's default tier: ``[routing.stages]``, built-ins, then ``default_tier``."""
        return self.settings.tier_of_stage(stage)

    def default_model(self, stage: str) -> str:
        """The registry's default model for the stage's tier (the first of that tier)."""
        tier = self.default_tier(stage)
        models = self.registry.by_tier(tier)
        if not models:
            # A registry with an empty tier still has models in the others; take the nearest.
            for other in sorted(TIERS, key=lambda t: abs(TIERS.index(t) - TIERS.index(tier))):
                if self.registry.by_tier(other):
                    return self.registry.by_tier(other)[0].id
            raise ConfigError(Path("config.toml"), "the model registry is empty", key="models")
        return models[0].id

    def get_best_model(
        self,
        workflow: str | None,
        stage: str,
        max_cost: float | None = None,
        max_latency_ms: float | None = None,
        min_success_rate: float | None = None,
        days: int | None = None,
        explore: bool = False,
    ) -> RoutingDecision:
        """Choose the model for ``stage`` (of ``workflow``, or of every workflow when None).

        Args:
            workflow: the workflow, or None for the stage across all workflows.
            stage: the stage; an unknown one is not an error (no history → tier default).
            max_cost: cap on the average cost per call, USD (default: ``[routing]``).
            max_latency_ms: cap on the p95 latency (default: ``[routing]``).
            min_success_rate: minimum success lower bound, 0..1 (default: ``[routing]``).
            days: the window in days (default: ``[routing] window_days``).
            explore: sample among the candidates that meet the caps, favouring uncertain
                ones, for at most ``explore_share`` of such calls.

        Returns:
            The decision; never raises because every candidate was ruled out.

        Raises:
            UsageError: a negative cap, a minimum outside 0..1, or a window under one day.
        """
        settings = self._override(max_cost, max_latency_ms, min_success_rate, days)
        now = self.clock()
        tier = self.default_tier(stage)
        candidates = self._candidates(workflow, stage, tier, settings, now)
        eligible = [c for c in candidates if c.eligible]
        best = eligible[0] if eligible else None

        chosen_model: str | None = best.model if best else None
        explored = False
        sampled: str | None = None
        if explore and self.rng.random() < settings.explore_share:
            sampled = self._thompson(candidates, chosen_model, settings)
            if sampled is not None and sampled != chosen_model:
                chosen_model, explored = sampled, True

        fallback = chosen_model is None
        if chosen_model is None:
            chosen_model = self.default_model(stage)
        candidates = _with_changes(candidates, best, settings)
        chosen = next((c for c in candidates if c.model == chosen_model), None)
        reason = _reason(
            _where(workflow, stage),
            tier,
            settings,
            candidates,
            chosen_model,
            best,
            fallback,
            explored,
        )
        return RoutingDecision(
            workflow=workflow,
            stage=stage,
            chosen=chosen_model,
            tier=chosen.tier if chosen else self._tier_of(chosen_model, None),
            provider=chosen.provider if chosen else self.registry.provider_of(chosen_model),
            reason=reason,
            fallback=fallback,
            constraints={
                "max_cost_usd": settings.max_cost_usd,
                "max_latency_ms": settings.max_latency_ms,
                "min_success_rate": settings.min_success_rate,
                "min_calls": settings.min_calls,
                "window_days": settings.window_days,
                "half_life_days": settings.half_life_days,
                "recent_calls": settings.recent_calls,
                "explore": explore,
                "explore_share": settings.explore_share,
            },
            candidates=_ordered(candidates, chosen_model),
            explored=explored,
            best=best.model if best else None,
            default_tier=tier,
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
            return advice("keep", current, f"no calls recorded for {_where(workflow, stage)} yet")
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
        self, workflow: str | None, stage: str | None = None, days: int = 7
    ) -> RoutingStats:
        """What happened per (workflow, stage) over the last ``days`` days, and the choice now.

        Args:
            workflow: one workflow, or None for every workflow.
            stage: one stage, or None for every stage with calls in the window.
            days: the window, at least 1.

        Raises:
            UsageError: ``days`` under 1.
        """
        settings = self._override(None, None, None, days)
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

    def _override(
        self,
        max_cost: float | None,
        max_latency_ms: float | None,
        min_success_rate: float | None,
        days: int | None,
    ) -> RoutingSettings:
        if max_cost is not None and not max_cost >= 0:
            raise UsageError(f"--max-cost must be zero or more (got {max_cost})")
        if max_latency_ms is not None and not max_latency_ms >= 0:
            raise UsageError(f"--max-latency must be zero or more (got {max_latency_ms})")
        if min_success_rate is not None and not 0 <= min_success_rate <= 1:
            raise UsageError(f"--min-success must be between 0 and 1 (got {min_success_rate})")
        if days is not None and days < 1:
            raise UsageError(f"--days must be at least 1 (got {days})")
        changes: dict[str, Any] = {}
        if max_cost is not None:
            changes["max_cost_usd"] = max_cost
        if max_latency_ms is not None:
            changes["max_latency_ms"] = max_latency_ms
        if min_success_rate is not None:
            changes["min_success_rate"] = min_success_rate
        if days is not None:
            changes["window_days"] = days
        return replace(self.settings, **changes) if changes else self.settings

    def _performance(
        self, workflow: str | None, stage: str, settings: RoutingSettings, now: float
    ) -> list[ModelPerformance]:
        half_life = settings.half_life_days
        return self.store.model_performance(
            workflow=workflow,
            stage=stage,
            since_ts=now - settings.window_days * DAY_S,
            weights=settings.weights,
            half_life_s=half_life * DAY_S if half_life else None,
            recent_n=settings.recent_calls,
            now=now,
        )

    def _candidates(
        self, workflow: str | None, stage: str, tier: str, settings: RoutingSettings, now: float
    ) -> list[Candidate]:
        rows = [self._judge(p, settings) for p in self._performance(workflow, stage, settings, now)]
        seen = {c.model for c in rows}
        for model in self.registry.by_tier(tier):
            if model.id not in seen:
                rows.append(
                    Candidate(
                        model=model.id,
                        provider=model.provider,
                        tier=model.tier,
                        rejected_because=(NO_HISTORY,),
                    )
                )
        return _ordered(rows, None)

    def _judge(self, perf: ModelPerformance, settings: RoutingSettings) -> Candidate:
        weighted_calls = (
            perf.weighted_calls if perf.weighted_calls is not None else float(perf.calls)
        )
        weighted_successes = (
            perf.weighted_successes
            if perf.weighted_successes is not None
            else float(perf.successes)
        )
        # The rate is recency-weighted, but the confidence counts every call of the window: a
        # quiet workflow whose calls are all three weeks old has as much evidence as it had
        # then, and must not drop below the minimum merely by ageing.
        weighted_rate = weighted_successes / weighted_calls if weighted_calls > 0 else 0.0
        bound = wilson_lower_bound(weighted_rate * perf.calls, perf.calls)
        demoted = _is_demoted(perf, weighted_calls, weighted_successes, settings)
        if demoted:
            bound = min(
                bound,
                wilson_lower_bound(perf.recent_calls - perf.recent_failures, perf.recent_calls),
            )
        score = settings.weights.score(bound, perf.avg_cost_usd, perf.p95_latency_ms)
        reasons: list[str] = []
        if perf.calls < settings.min_calls:
            reasons.append(f"{TOO_FEW_CALLS} ({perf.calls} of {settings.min_calls})")
        # With too few calls the bound says nothing new; a demoted model's newest calls do.
        if bound < settings.min_success_rate and (perf.calls >= settings.min_calls or demoted):
            if demoted:
                reasons.append(
                    f"success bound {bound:.1%} below the {settings.min_success_rate:.0%} minimum: "
                    f"{perf.recent_failures} of its newest {perf.recent_calls} calls failed"
                )
            else:
                reasons.append(
                    f"success bound {bound:.1%} below the {settings.min_success_rate:.0%} minimum"
                )
        if (
            settings.max_latency_ms is not None
            and perf.p95_latency_ms is not None
            and perf.p95_latency_ms > settings.max_latency_ms
        ):
            reasons.append(
                f"p95 latency {perf.p95_latency_ms:,.0f} ms over the "
                f"{settings.max_latency_ms:,.0f} ms cap"
            )
        if (
            settings.max_cost_usd is not None
            and perf.avg_cost_usd is not None
            and perf.avg_cost_usd > settings.max_cost_usd
        ):
            reasons.append(
                f"average cost {format_usd(perf.avg_cost_usd)} "
                f"over the {format_usd(settings.max_cost_usd)} cap"
            )
        return Candidate(
            model=perf.model,
            provider=perf.provider or self.registry.provider_of(perf.model),
            tier=self._tier_of(perf.model, perf.tier),
            calls=perf.calls,
            success_rate=perf.success_rate,
            success_lower_bound=bound,
            p50_latency_ms=perf.p50_latency_ms,
            p95_latency_ms=perf.p95_latency_ms,
            avg_cost_usd=perf.avg_cost_usd,
            quality_score=score,
            eligible=not reasons,
            rejected_because=tuple(reasons),
            recent_calls=perf.recent_calls,
            recent_failures=perf.recent_failures,
            demoted=demoted,
            weighted_calls=weighted_calls,
            weighted_successes=weighted_successes,
        )

    def _tier_of(self, model_id: str, recorded: str | None) -> str | None:
        known = self.registry.model(model_id)
        if known is not None:
            return known.tier
        return normalise_tier(recorded) if recorded else None

    def _thompson(
        self, candidates: list[Candidate], leader: str | None, settings: RoutingSettings
    ) -> str | None:
        """Top-two Thompson sampling: the challenger most likely to beat ``leader``.

        Each draw samples a success rate per candidate from its Beta posterior (recency-weighted
        counts, so old evidence is uncertain evidence; a demoted model samples from its newest
        calls) and scores it with the cost and latency terms. The first draw won by a model
        other than the leader names the challenger; a model whose posterior never beats the
        leader's (a known poor one) is never tried, and when nobody does the leader stays.
        Candidates ruled out by a cap take no part.
        """
        pool = []
        for c in candidates:
            if c.capped:
                continue
            if c.demoted:
                successes = float(c.recent_calls - c.recent_failures)
                failures = float(c.recent_failures)
            else:
                successes = c.weighted_successes
                failures = max(c.weighted_calls - c.weighted_successes, 0.0)
            pool.append((c, 1.0 + successes, 1.0 + failures))
        if not pool:
            return leader
        for _ in range(CHALLENGER_DRAWS):
            winner, best_score = pool[0][0].model, -math.inf
            for c, alpha, beta in pool:
                draw = self.rng.betavariate(alpha, beta)
                score = settings.weights.score(draw, c.avg_cost_usd, c.p95_latency_ms)
                if score > best_score:
                    winner, best_score = c.model, score
            if winner != leader:
                return winner
        return leader

    def _tier_totals(self, workflow: str | None, stage: str) -> dict[str, _TierTotal]:
        totals: dict[str, _TierTotal] = {}
        for perf in self._performance(workflow, stage, self.settings, self.clock()):
            tier = self._tier_of(perf.model, perf.tier)
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
        """The (workflow, stage) pairs with calls since ``since_ts``, sorted.

        A loose index scan over ``calls_workflow_stage_ts`` (one seek per distinct name, then
        one per pair for the window) instead of ``SELECT DISTINCT``, which would read every
        row of a million-call store.
        """
        conn = self.store.conn

        def distinct(column: str, fixed: tuple[str, ...]) -> list[str]:
            where = "workflow = ? AND " if fixed else ""
            sql = f"SELECT MIN({column}) FROM calls WHERE {where}{column}"
            found: list[str] = []
            value = conn.execute(f"{sql} >= ''", fixed).fetchone()[0]
            while value is not None:
                found.append(value)
                value = conn.execute(f"{sql} > ?", (*fixed, value)).fetchone()[0]
            return found

        workflows = [workflow] if workflow is not None else distinct("workflow", ())
        pairs = []
        for name in workflows:
            for stage in distinct("stage", (name,)):
                recent = conn.execute(
                    "SELECT 1 FROM calls WHERE workflow = ? AND stage = ? AND ts >= ? LIMIT 1",
                    (name, stage, since_ts),
                ).fetchone()
                if recent:
                    pairs.append((name, stage))
        return pairs


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


def _is_demoted(
    perf: ModelPerformance,
    weighted_calls: float,
    weighted_successes: float,
    settings: RoutingSettings,
) -> bool:
    """Whether the newest calls fail far more often than the window says.

    The test is one-sided and conservative: the Wilson lower bound of the recent failure rate
    must exceed the window's failure rate by ``demote_margin``. A model failing 10 % of its
    window calls needs 8 failures among its newest 20 (a chance of 1 in 2,500 by luck alone).
    """
    if perf.recent_calls <= 0 or weighted_calls <= 0:
        return False
    window_failure_rate = 1.0 - weighted_successes / weighted_calls
    recent_bound = wilson_lower_bound(perf.recent_failures, perf.recent_calls)
    return recent_bound > window_failure_rate + settings.demote_margin


def _ordered(candidates: list[Candidate], chosen: str | None) -> list[Candidate]:
    """Chosen first, then eligible by score, then the rest by score, then no history."""

    def key(c: Candidate) -> tuple[int, int, int, float, int, str]:
        return (
            0 if c.model == chosen else 1,
            0 if c.eligible else 1,
            0 if c.has_history else 1,
            -(c.quality_score if c.quality_score is not None else -math.inf),
            -c.calls,
            c.model,
        )

    return sorted(candidates, key=key)
