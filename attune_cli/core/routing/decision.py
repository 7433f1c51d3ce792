"""What the router decides and shows: candidates, decisions, tier advice and stage stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attune_cli.core.performance import ModelPerformance

TOO_FEW_CALLS = "too few calls"
# Posterior draws an exploring decision makes looking for a challenger to the leader.
CHALLENGER_DRAWS = 10
NO_HISTORY = "no history"


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


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
