"""Adaptive routing: pick the model that has done best for a workflow stage, and say why.

The router reads the per-model figures of a (workflow, stage) from the telemetry store over a
window of days (every call in the window, recency-weighted by a half-life) and ranks the
candidates by ``quality_score`` (see ``attune_cli.core.performance``)::

    candidates = models with history in the window  +  the registry's models of the stage's tier
    verdict    = eligible, or rejected because of: too few calls · success bound below the
                 minimum · p95 latency over the cap · average cost over the cap
    choice     = the eligible candidate with the highest quality_score, else the tier default
                 (``fallback``), with a reason naming what ruled each model out

Recency: each call weighs ``0.5 ** (age / half_life)`` in the success rate; the confidence
bound still counts every call of the window, so old evidence shifts less but is not lost.

A model whose newest calls fail far more often than its window says (the Wilson lower bound of
its recent failure rate exceeds the window's failure rate by ``demote_margin``) is demoted at
once: its success bound becomes that of its newest calls, so a model that degrades loses its
place within a few dozen calls, not after the half-life has worn its good history away.

With ``explore=True`` a share of decisions (``explore_share``, the cap on exploration traffic)
goes to a challenger found by top-two Thompson sampling over the success posteriors of the
candidates that meet the caps: models whose figures are uncertain (few or old calls) get
tried and a model that improved is noticed, while one known to be poor is left alone.
Settings come from ``config.toml``::

    [routing]
    window_days = 30            # the window: every call of the stage in these days
    min_calls = 10              # fewer calls than this: "too few calls"
    min_success_rate = 0.7      # minimum Wilson lower bound of the success rate
    # max_cost_usd = 0.01       # caps (absent: no cap)
    # max_latency_ms = 5000
    half_life_days = 3          # recency weighting; 0 turns it off
    recent_calls = 20           # demotion looks at each model's newest calls
    demote_margin = 0.1
    explore = true              # whether the executor explores
    explore_share = 0.1         # at most this share of explored decisions deviate
    advice_recent_calls = 50    # tier advice: the stage's newest calls
    upgrade_failure_rate = 0.2  # ... failing more than this → upgrade
    downgrade_min_calls = 50    # a cheaper tier needs this much history ...
    downgrade_margin = 0.02     # ... and a success rate within this of the current tier
    default_tier = "capable"    # stages not named below

    [routing.stages]
    triage = "cheap"
    analysis = "capable"
    synthesis = "premium"
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.clock import now as clock_now
from attune_cli.core.config import get_number, table
from attune_cli.core.errors import ConfigError, UsageError
from attune_cli.core.money import format_usd
from attune_cli.core.performance import ModelPerformance, ScoreWeights, wilson_lower_bound
from attune_cli.core.registry import TIERS, Registry, next_tier, normalise_tier, previous_tier

if TYPE_CHECKING:
    from attune_cli.core.telemetry import TelemetryStore
    from attune_cli.core.workspace import Workspace

DAY_S = 86_400.0

BUILTIN_STAGE_TIERS: Mapping[str, str] = {
    "triage": "cheap",
    "classify": "cheap",
    "classification": "cheap",
    "extract": "cheap",
    "summarize": "cheap",
    "analysis": "capable",
    "review": "capable",
    "code": "capable",
    "synthesis": "premium",
    "architecture": "premium",
    "planning": "premium",
}

TOO_FEW_CALLS = "too few calls"
# Posterior draws an exploring decision makes looking for a challenger to the leader.
CHALLENGER_DRAWS = 10
NO_HISTORY = "no history"


@dataclass(frozen=True)
class RoutingSettings:
    """How the router judges candidates; ``[routing]`` in ``config.toml``, overridable per call.

    Attributes:
        window_days: the window of history considered (every call in it).
        min_calls: fewer calls than this in the window make a model ineligible.
        min_success_rate: the minimum Wilson lower bound of a model's success rate.
        max_cost_usd: cap on the average cost per call (None: no cap).
        max_latency_ms: cap on the p95 latency (None: no cap).
        half_life_days: age at which a call counts half (None or 0: every call counts fully).
        recent_calls: how many of each model's newest calls demotion looks at.
        demote_margin: how far the newest calls' failure rate (its lower bound) must exceed the
            window's before the model is demoted.
        explore: whether callers that route on their own (the executor) explore.
        explore_share: the largest share of explored decisions that may deviate from the best.
        advice_recent_calls: how many of the stage's newest calls tier advice looks at.
        upgrade_failure_rate: the newest calls failing more than this → upgrade the tier.
        downgrade_min_calls: a cheaper tier needs this many calls in the window to be judged.
        downgrade_margin: a cheaper tier within this of the current success rate → downgrade.
        default_tier: the tier of stages neither built in nor in ``[routing.stages]``.
        stage_tiers: ``[routing.stages]``: stage → tier, over the built-ins.
        weights: the ``quality_score`` weights (``[routing.score]``).
    """

    window_days: int = 30
    min_calls: int = 10
    min_success_rate: float = 0.7
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    half_life_days: float | None = 3.0
    recent_calls: int = 20
    demote_margin: float = 0.1
    explore: bool = True
    explore_share: float = 0.1
    advice_recent_calls: int = 50
    upgrade_failure_rate: float = 0.2
    downgrade_min_calls: int = 50
    downgrade_margin: float = 0.02
    default_tier: str = "capable"
    stage_tiers: Mapping[str, str] = field(default_factory=dict)
    weights: ScoreWeights = field(default_factory=ScoreWeights)

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> RoutingSettings:
        """Read ``[routing]``, ``[routing.stages]`` and ``[routing.score]``.

        Args:
            config: the parsed ``config.toml``.
            path: its location, for error messages.

        Raises:
            ConfigError: a value of the wrong type or out of range, naming file, key and value.
        """
        section = table(config, path, "routing")
        base = cls()

        def number(
            key: str,
            *,
            minimum: float | None = 0,
            maximum: float | None = None,
            integer: bool = False,
        ) -> Any:
            default = getattr(base, key)
            value = get_number(
                section,
                key,
                default,
                path=path,
                prefix="routing",
                minimum=minimum,
                maximum=maximum,
                integer=integer,
            )
            return int(value) if integer and value is not None else value

        explore = section.get("explore", base.explore)
        if not isinstance(explore, bool):
            raise ConfigError(path, "must be true or false", key="routing.explore", value=explore)
        default_tier = _tier_value(
            section.get("default_tier", base.default_tier), path, "default_tier"
        )
        stages = table(section, path, "stages")
        stage_tiers = {
            str(stage): _tier_value(tier, path, f"stages.{stage}") for stage, tier in stages.items()
        }
        half_life = number("half_life_days")
        return cls(
            window_days=number("window_days", minimum=1, integer=True),
            min_calls=number("min_calls", minimum=1, integer=True),
            min_success_rate=number("min_success_rate", maximum=1),
            max_cost_usd=number("max_cost_usd"),
            max_latency_ms=number("max_latency_ms"),
            half_life_days=half_life or None,
            recent_calls=number("recent_calls", minimum=1, integer=True),
            demote_margin=number("demote_margin", maximum=1),
            explore=explore,
            explore_share=number("explore_share", maximum=1),
            advice_recent_calls=number("advice_recent_calls", minimum=1, integer=True),
            upgrade_failure_rate=number("upgrade_failure_rate", maximum=1),
            downgrade_min_calls=number("downgrade_min_calls", minimum=1, integer=True),
            downgrade_margin=number("downgrade_margin", maximum=1),
            default_tier=default_tier,
            stage_tiers=stage_tiers,
            weights=ScoreWeights.from_config(config, path),
        )

    def tier_of_stage(self, stage: str) -> str:
        """The default tier of ``stage``: ``[routing.stages]``, the built-ins, then the default."""
        key = stage.strip().lower()
        for name, tier in self.stage_tiers.items():
            if name.strip().lower() == key:
                return tier
        return BUILTIN_STAGE_TIERS.get(key, self.default_tier)


def _tier_value(value: object, path: Path, key: str) -> str:
    tier = normalise_tier(value) if isinstance(value, str) else None
    if tier not in TIERS:
        raise ConfigError(
            path, f"must be one of {', '.join(TIERS)}", key=f"routing.{key}", value=value
        )
    return tier


@dataclass(frozen=True)
class ChangeNeeded:
    """How far a candidate's figures would have to move to change the decision.

    For the chosen model the figures are those at which it would lose its place; for any other
    those at which it would take it. ``None`` means that figure alone cannot do it.

    Attributes:
        score_gap: the quality-score points between this candidate and the one it is compared
            with (None when either has no score).
        success_lower_bound: the success bound that closes the gap, other figures unchanged.
        avg_cost_usd: the average cost per call that closes the gap.
        p95_latency_ms: the p95 latency that closes the gap.
        more_calls: calls still needed to be judged at all.
        blockers: the verdicts that keep it out whatever its score.
        text: one sentence saying all this.
    """

    score_gap: float | None = None
    success_lower_bound: float | None = None
    avg_cost_usd: float | None = None
    p95_latency_ms: float | None = None
    more_calls: int | None = None
    blockers: tuple[str, ...] = ()
    text: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape shown under each candidate's ``would_change``."""
        return {
            "score_gap": _round(self.score_gap, 4),
            "success_lower_bound": _round(self.success_lower_bound, 6),
            "avg_cost_usd": _round(self.avg_cost_usd, 8),
            "p95_latency_ms": _round(self.p95_latency_ms, 1),
            "more_calls": self.more_calls,
            "text": self.text,
        }


@dataclass(frozen=True)
class Candidate:
    """One model considered for a stage, its figures and its verdict.

    Attributes:
        model: the model id.
        provider: who serves it (None when unknown).
        tier: its tier (None when unknown).
        calls: calls in the window (0: no history).
        success_rate: plain success rate in the window (None without history).
        success_lower_bound: the bound the router judges by: the Wilson lower bound of the
            recency-weighted success rate over the window's calls, or that of the newest calls
            when the model is demoted.
        p50_latency_ms: median latency in the window.
        p95_latency_ms: 95th percentile latency in the window.
        avg_cost_usd: mean cost per call in the window.
        quality_score: the ranking score from the figures above (None without history).
        eligible: whether it passed every check.
        rejected_because: why not, one phrase per failed check (empty when eligible).
        recent_calls: how many of its newest calls the demotion check looked at.
        recent_failures: failures among them.
        demoted: whether its newest calls failed far more often than its window says.
        would_change: how far its figures would have to move to change the decision.
        weighted_calls: recency-weighted calls (for sampling).
        weighted_successes: recency-weighted successes (for sampling).
    """

    model: str
    provider: str | None
    tier: str | None
    calls: int = 0
    success_rate: float | None = None
    success_lower_bound: float | None = None
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    avg_cost_usd: float | None = None
    quality_score: float | None = None
    eligible: bool = False
    rejected_because: tuple[str, ...] = ()
    recent_calls: int = 0
    recent_failures: int = 0
    demoted: bool = False
    would_change: ChangeNeeded | None = None
    weighted_calls: float = 0.0
    weighted_successes: float = 0.0

    @property
    def has_history(self) -> bool:
        """Whether the model has calls in the window."""
        return self.calls > 0

    @property
    def capped(self) -> bool:
        """Whether a cost or latency cap rules it out (more evidence would not help)."""
        return any(
            reason.startswith(("p95 latency", "average cost")) for reason in self.rejected_because
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one candidate in ``route explain --json``."""
        return {
            "model": self.model,
            "provider": self.provider,
            "tier": self.tier,
            "calls": self.calls,
            "success_rate": _round(self.success_rate, 6),
            "success_lower_bound": _round(self.success_lower_bound, 6),
            "p50_latency_ms": _round(self.p50_latency_ms, 1),
            "p95_latency_ms": _round(self.p95_latency_ms, 1),
            "avg_cost_usd": _round(self.avg_cost_usd, 8),
            "quality_score": _round(self.quality_score, 4),
            "eligible": self.eligible,
            "rejected_because": list(self.rejected_because),
            "recent_calls": self.recent_calls,
            "recent_failures": self.recent_failures,
            "demoted": self.demoted,
            "would_change": self.would_change.as_dict() if self.would_change else None,
        }


@dataclass(frozen=True)
class RoutingDecision:
    """The model chosen for a stage, why, and every candidate considered.

    Attributes:
        workflow: the workflow asked about (None: the stage across all workflows).
        stage: the stage.
        chosen: the model id to call.
        tier: its tier.
        provider: its provider.
        reason: one sentence saying why.
        fallback: True when no candidate qualified and the tier default was used.
        constraints: the caps and settings the decision was made under.
        candidates: every candidate, best first, with figures and verdicts.
        explored: True when exploration picked something other than the best.
        best: the model the router would pick without exploring (None when it fell back).
        default_tier: the stage's default tier.
    """

    workflow: str | None
    stage: str
    chosen: str
    tier: str | None
    provider: str | None
    reason: str
    fallback: bool
    constraints: dict[str, Any]
    candidates: list[Candidate]
    explored: bool = False
    best: str | None = None
    default_tier: str = "capable"

    def candidate(self, model: str) -> Candidate | None:
        """The candidate row of ``model``, or None."""
        return next((c for c in self.candidates if c.model == model), None)

    @property
    def what_would_change(self) -> list[str]:
        """One sentence per candidate saying how far its figures would have to move."""
        return [f"{c.model}: {c.would_change.text}" for c in self.candidates if c.would_change]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``route explain --json`` and ``route best --json``."""
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "chosen": self.chosen,
            "tier": self.tier,
            "provider": self.provider,
            "reason": self.reason,
            "fallback": self.fallback,
            "explored": self.explored,
            "best": self.best,
            "default_tier": self.default_tier,
            "constraints": dict(self.constraints),
            "candidates": [c.as_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class TierAdvice:
    """Whether a stage should move to another tier (``route check``).

    Attributes:
        workflow: the workflow (None: every workflow).
        stage: the stage.
        current_tier: the stage's tier today (``[routing.stages]`` or built-in).
        recommendation: ``upgrade``, ``downgrade`` or ``keep``.
        suggested_tier: the tier to move to (the current one for ``keep``).
        reason: one sentence with the figures.
        recent_calls: how many of the stage's newest calls were looked at.
        recent_failure_rate: their failure rate (None without calls).
        savings_per_1k_calls_usd: what a downgrade saves per 1,000 calls (None otherwise or
            when costs are unknown).
    """

    workflow: str | None
    stage: str
    current_tier: str
    recommendation: str
    suggested_tier: str
    reason: str
    recent_calls: int
    recent_failure_rate: float | None
    savings_per_1k_calls_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one entry of ``route check --json``."""
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "current_tier": self.current_tier,
            "recommendation": self.recommendation,
            "suggested_tier": self.suggested_tier,
            "reason": self.reason,
            "recent_calls": self.recent_calls,
            "recent_failure_rate": _round(self.recent_failure_rate, 6),
            "savings_per_1k_calls_usd": _round(self.savings_per_1k_calls_usd, 6),
        }


@dataclass(frozen=True)
class StageStats:
    """What happened in one (workflow, stage) over the stats window.

    Attributes:
        workflow: the workflow (None: every workflow together).
        stage: the stage.
        calls: calls in the window.
        successes: successful calls.
        total_cost_usd: their summed cost (where recorded).
        best: the model the router would choose now.
        default_tier: the stage's default tier.
        models: each model's figures, best score first.
    """

    workflow: str | None
    stage: str
    calls: int
    successes: int
    total_cost_usd: float
    best: str
    default_tier: str
    models: list[ModelPerformance]

    @property
    def success_rate(self) -> float:
        """Plain success rate (0.0 with no calls)."""
        return self.successes / self.calls if self.calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one stage in ``route stats --json``."""
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "calls": self.calls,
            "successes": self.successes,
            "success_rate": round(self.success_rate, 6),
            "total_cost_usd": round(self.total_cost_usd, 8),
            "best": self.best,
            "default_tier": self.default_tier,
            "models": [m.as_dict() for m in self.models],
        }


@dataclass(frozen=True)
class RoutingStats:
    """``get_routing_stats``: every (workflow, stage) with calls in the window."""

    workflow: str | None
    stage: str | None
    days: int
    stages: list[StageStats]

    @property
    def calls(self) -> int:
        """Calls in the window over every stage."""
        return sum(s.calls for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``route stats --json``."""
        successes = sum(s.successes for s in self.stages)
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "days": self.days,
            "calls": self.calls,
            "success_rate": round(successes / self.calls, 6) if self.calls else None,
            "total_cost_usd": round(sum(s.total_cost_usd for s in self.stages), 8),
            "stages": [s.as_dict() for s in self.stages],
        }


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


def _reason(
    where: str,
    tier: str,
    settings: RoutingSettings,
    candidates: list[Candidate],
    chosen: str,
    best: Candidate | None,
    fallback: bool,
    explored: bool,
) -> str:
    """The one sentence saying why ``chosen`` was picked."""
    if explored:
        instead = f"the best by its figures is {best.model}" if best else "no model qualifies yet"
        return (
            f"Exploring: {chosen} was drawn by Thompson sampling among the models within the "
            f"caps for {where} ({instead})."
        )
    if fallback:
        if not any(c.has_history for c in candidates):
            days = settings.window_days
            return (
                f"No history for {where} in the last {days} day{'s' if days != 1 else ''}; "
                f"using the {tier} tier default {chosen}."
            )
        ruled_out = "; ".join(
            f"{c.model}: {', '.join(c.rejected_because)}" for c in candidates if c.rejected_because
        )
        return (
            f"No model qualified for {where} ({ruled_out}), so the {tier} tier default "
            f"{chosen} is used."
        )
    assert best is not None
    eligible = sum(1 for c in candidates if c.eligible)
    among = f"among {eligible} eligible models" if eligible > 1 else "as the only eligible model"
    return (
        f"{chosen} has the best quality score ({best.quality_score:.1f}) {among} for {where}: "
        f"{_figures(best)}."
    )


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


def _with_changes(
    candidates: list[Candidate], best: Candidate | None, settings: RoutingSettings
) -> list[Candidate]:
    """Attach to every candidate how far its figures would have to move to change the decision."""
    runner_up = next((c for c in candidates if c.eligible and c is not best), None)
    result = []
    for c in candidates:
        if best is not None and c is best:
            change = _to_lose(c, runner_up, settings)
        else:
            change = _to_win(c, best, settings)
        result.append(replace(c, would_change=change))
    return result


def _to_lose(
    chosen: Candidate, runner_up: Candidate | None, settings: RoutingSettings
) -> ChangeNeeded:
    assert chosen.quality_score is not None and chosen.success_lower_bound is not None
    if runner_up is None or runner_up.quality_score is None:
        return ChangeNeeded(
            text=(
                f"the only eligible model; it loses its place only by failing a check (its "
                f"success bound {chosen.success_lower_bound:.1%} against the "
                f"{settings.min_success_rate:.0%} minimum, or a cap)"
            )
        )
    gap = chosen.quality_score - runner_up.quality_score
    weights = settings.weights
    bound = (
        chosen.success_lower_bound - gap / weights.success_weight
        if weights.success_weight
        else None
    )
    bound = bound if bound is not None and bound >= 0 else None
    cost = _cost_for(chosen.avg_cost_usd, +gap, weights)
    p95 = _latency_for(chosen.p95_latency_ms, +gap, weights)
    options = _options(bound, chosen.success_lower_bound, cost, p95, verb="fell", up="rose")
    text = f"leads {runner_up.model} by {gap:.1f} points; it would lose its place if " + (
        options or "the gap closed"
    )
    return ChangeNeeded(
        score_gap=gap, success_lower_bound=bound, avg_cost_usd=cost, p95_latency_ms=p95, text=text
    )


def _to_win(c: Candidate, best: Candidate | None, settings: RoutingSettings) -> ChangeNeeded:
    blockers = tuple(r for r in c.rejected_because if not r.startswith((TOO_FEW_CALLS, NO_HISTORY)))
    more_calls = None
    if not c.has_history:
        more_calls = settings.min_calls
    elif c.calls < settings.min_calls:
        more_calls = settings.min_calls - c.calls
    parts: list[str] = []
    if more_calls is not None:
        parts.append(f"needs {more_calls} more call{'s' if more_calls != 1 else ''} to be judged")
    if c.demoted:
        parts.append(
            f"its newest calls must stop failing ({c.recent_failures} of the last "
            f"{c.recent_calls} failed)"
        )
    elif (
        more_calls is None
        and c.success_lower_bound is not None
        and c.success_lower_bound < settings.min_success_rate
    ):
        parts.append(
            f"its success bound must reach {settings.min_success_rate:.0%} "
            f"(now {c.success_lower_bound:.1%})"
        )
    if (
        settings.max_latency_ms is not None
        and c.p95_latency_ms is not None
        and c.p95_latency_ms > settings.max_latency_ms
    ):
        parts.append(
            f"its p95 must fall to {settings.max_latency_ms:,.0f} ms (now {c.p95_latency_ms:,.0f})"
        )
    if (
        settings.max_cost_usd is not None
        and c.avg_cost_usd is not None
        and c.avg_cost_usd > settings.max_cost_usd
    ):
        parts.append(
            f"its average cost must fall to {format_usd(settings.max_cost_usd)} "
            f"(now {format_usd(c.avg_cost_usd)})"
        )

    gap = bound = cost = p95 = None
    if (
        best is not None
        and c.quality_score is not None
        and best.quality_score is not None
        and c.success_lower_bound is not None
    ):
        gap = best.quality_score - c.quality_score
        weights = settings.weights
        if weights.success_weight:
            needed = c.success_lower_bound + gap / weights.success_weight
            bound = needed if needed <= 1 else None
        cost = _cost_for(c.avg_cost_usd, -gap, weights)
        p95 = _latency_for(c.p95_latency_ms, -gap, weights)
        options = _options(bound, c.success_lower_bound, cost, p95, verb="rose", up="fell")
        lead = options or "no single figure moved alone could close it"
        if parts:
            parts.append(
                f"even then it trails {best.model} by {gap:.1f} points and would lead only if "
                + (options or "several figures improved at once")
            )
        else:
            parts.append(
                f"trails {best.model} by {gap:.1f} points; it would take the lead if {lead}"
                if options
                else f"trails {best.model} by {gap:.1f} points; {lead}"
            )
    elif best is not None and not c.has_history:
        parts.append(f"then it must beat {best.model}'s score of {best.quality_score:.1f}")
    elif best is None and not parts:
        parts.append("it qualifies")
    text = "; ".join(parts)
    return ChangeNeeded(
        score_gap=gap,
        success_lower_bound=bound,
        avg_cost_usd=cost,
        p95_latency_ms=p95,
        more_calls=more_calls,
        blockers=blockers,
        text=text,
    )


def _options(
    bound: float | None,
    current_bound: float,
    cost: float | None,
    p95: float | None,
    *,
    verb: str,
    up: str,
) -> str:
    """Join the figures that alone would close a gap: 'its success bound rose to …, or …'."""
    options = []
    if bound is not None:
        options.append(f"its success bound {verb} to {bound:.1%} (now {current_bound:.1%})")
    if cost is not None:
        options.append(f"its average cost {up} to {format_usd(cost)}")
    if p95 is not None:
        options.append(f"its p95 latency {up} to {p95:,.0f} ms")
    return ", or ".join(options)


def _cost_for(cost: float | None, delta_points: float, weights: ScoreWeights) -> float | None:
    """The cost whose penalty differs from ``cost``'s by ``delta_points`` (None: impossible)."""
    if cost is None or weights.cost_weight <= 0:
        return None
    penalty = (
        math.log2(1 + max(cost, 0.0) / weights.cost_unit_usd) + delta_points / weights.cost_weight
    )
    if penalty < 0:
        return None
    return weights.cost_unit_usd * (2**penalty - 1) if penalty < 1000 else None


def _latency_for(p95: float | None, delta_points: float, weights: ScoreWeights) -> float | None:
    """The p95 whose penalty differs from ``p95``'s by ``delta_points`` (None: impossible)."""
    if p95 is None or weights.latency_weight <= 0:
        return None
    penalty = (
        math.log2(1 + max(p95, 0.0) / weights.latency_unit_ms)
        + delta_points / weights.latency_weight
    )
    if penalty < 0:
        return None
    return weights.latency_unit_ms * (2**penalty - 1) if penalty < 1000 else None


def _figures(c: Candidate) -> str:
    parts = [f"success bound {c.success_lower_bound:.1%} over {c.calls:,} calls"]
    if c.p95_latency_ms is not None:
        parts.append(f"p95 {c.p95_latency_ms:,.0f} ms")
    if c.avg_cost_usd is not None:
        parts.append(f"{format_usd(c.avg_cost_usd)} per call")
    return ", ".join(parts)


def _where(workflow: str | None, stage: str) -> str:
    return (
        f"stage '{stage}' of workflow '{workflow}'"
        if workflow
        else f"stage '{stage}' (all workflows)"
    )


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
