"""What the router decides and shows: candidates, decisions, tier advice and stage stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from attune_cli.core.performance import ModelPerformance


class Reason(StrEnum):
    """Why a candidate was ruled out; words are made where they are shown (``explain``).

    The first three are hard: no fallback ever chooses a model ruled out by them. The others
    are preferences a model must meet to be chosen on its record; the fallback may still choose
    it, and says so.
    """

    NOT_CONFIGURED = "not_configured"
    OVER_COST_CAP = "over_cost_cap"
    COST_UNKNOWN = "cost_unknown"
    OVER_LATENCY_CAP = "over_latency_cap"
    DOWN = "down"
    DEMOTED = "demoted"
    SUCCESS_BELOW_MINIMUM = "success_below_minimum"
    TOO_FEW_CALLS = "too_few_calls"
    NO_HISTORY = "no_history"

    @property
    def hard(self) -> bool:
        """Whether no decision may pick a model ruled out for this reason."""
        return self in _HARD

    @property
    def cap(self) -> bool:
        """Whether this is a cost or latency cap (more evidence would not help)."""
        return self in (Reason.OVER_COST_CAP, Reason.COST_UNKNOWN, Reason.OVER_LATENCY_CAP)


_HARD = frozenset(
    {Reason.NOT_CONFIGURED, Reason.OVER_COST_CAP, Reason.COST_UNKNOWN, Reason.OVER_LATENCY_CAP}
)


@dataclass(frozen=True)
class Rejection:
    """One failed check and its figures.

    Attributes:
        reason: which check.
        value: the candidate's figure (cost in USD, p95 in ms, success bound, calls).
        limit: the cap or minimum it was held against.
    """

    reason: Reason
    value: float | None = None
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one entry of a candidate's ``rejections``."""
        return {"reason": str(self.reason), "value": _round(self.value, 8), "limit": self.limit}


# How optimistic exploring is about a challenger: its success rate is taken at the Wilson upper
# bound of its calls in exploring's memory at this many standard deviations. At 1 a model is
# tried while its recent record leaves a fair chance that it beats the leader. On the market
# simulation (seeds 0-23, targets met in degrade / challenger / outage): 1.0 meets 19 / 15 / 23;
# 0.5 18 / 14 / 23, 0.75 20 / 13 / 23, 1.5 15 / 15 / 17, 2.0 12 / 14 / 17.
EXPLORE_OPTIMISM = 1.0

# The sequential test a challenger under trial must keep passing to keep the calls: its record
# in exploring's memory is weighed as evidence for "it fails TRIAL_IMPROVEMENT less often than
# the leader" against "it is no better", and the trial goes on while the log-likelihood ratio
# stays above -TRIAL_SLACK. Against a 90 % leader a success adds 0.07 and a failure takes 1.2:
# one early failure is forgiven, two are not, and a model failing as often as the leader is
# dropped within a few calls. Measured on the market simulation
# (benchmarks/routing_sim_inprocess.py, seeds 0-7): 0.5 keeps trying near-equal models too long
# (their lucky streaks win the ranking), 0.85 drops an improved model on its first failure.
# Remeasured over seeds 0-23 (mean regret change against this rule, degrade / outage /
# challenger): improvement 0.6 +1.2 / +0.8 / +1.3, 0.8 +2.1 / +0.3 / +1.6; slack 1.5 +2.1 /
# +1.6 / +0.7; the leader judged at its rate in exploring's memory +0.6 / +0.3 / +0.1, at the
# lower of its two rates +1.5 / +0.7 / -0.2, at its newest calls worse still. A leader that
# has just begun to degrade is the demotion check's to catch, not the trial's.
TRIAL_IMPROVEMENT = 0.7
TRIAL_SLACK = 1.0


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
    blockers: tuple[Rejection, ...] = ()
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
        avg_cost_usd: mean cost per call in the window; for a model without recorded costs,
            the registry's price of a reference call (``cost_estimated``).
        quality_score: the ranking score from the figures above (None without history).
        rejections: the checks it failed, with figures (empty when eligible).
        recent_calls: how many of its newest calls the demotion check looked at.
        recent_failures: failures among them.
        demoted: whether its newest calls failed far more often than its window says.
        would_change: how far its figures would have to move to change the decision.
        weighted_calls: recency-weighted calls (for exploring).
        weighted_successes: recency-weighted successes (for exploring).
        performance: the figures it was judged on (None without history).
        cost_estimated: ``avg_cost_usd`` is the registry's price, not recorded costs.
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
    rejections: tuple[Rejection, ...] = ()
    recent_calls: int = 0
    recent_failures: int = 0
    demoted: bool = False
    would_change: ChangeNeeded | None = None
    weighted_calls: float = 0.0
    weighted_successes: float = 0.0
    performance: ModelPerformance | None = field(default=None, compare=False, repr=False)
    cost_estimated: bool = False

    @property
    def has_history(self) -> bool:
        """Whether the model has calls in the window."""
        return self.calls > 0

    @property
    def counted_calls(self) -> int:
        """The calls that judge it (its failures that say nothing about it left out)."""
        return self.performance.judged_calls if self.performance is not None else 0

    @property
    def eligible(self) -> bool:
        """Whether it passed every check."""
        return not self.rejections

    @property
    def callable_within_caps(self) -> bool:
        """Whether it may be chosen at all: configured, and within every cap."""
        return not any(r.reason.hard for r in self.rejections)

    @property
    def explore_counts(self) -> tuple[float, float]:
        """(successes, calls) exploring judges it by: its calls in exploring's shorter memory.

        A demoted model's newest calls (its window no longer describes it); the ranking's
        recency-weighted counts when its figures carry no exploring counts.
        """
        if self.demoted:
            return float(self.recent_calls - self.recent_failures), float(self.recent_calls)
        perf = self.performance
        if perf is not None and perf.explore_calls is not None:
            return perf.explore_successes or 0.0, perf.explore_calls
        return self.weighted_successes, self.weighted_calls

    @property
    def ranked_rate(self) -> float:
        """Its success rate as ranking weighs it: recency-weighted over the window (a demoted
        model's newest calls); 0.0 without calls."""
        if self.demoted:
            calls = float(self.recent_calls)
            return (calls - self.recent_failures) / calls if calls else 0.0
        if self.weighted_calls <= 0:
            return 0.0
        return self.weighted_successes / self.weighted_calls

    @property
    def eligible_to_try(self) -> bool:
        """Whether exploring may send it calls: callable within the caps and not down."""
        return self.callable_within_caps and not self.ruled_out_by(Reason.DOWN)

    @property
    def capped(self) -> bool:
        """Whether a cost or latency cap rules it out (more evidence would not help)."""
        return any(r.reason.cap for r in self.rejections)

    def ruled_out_by(self, reason: Reason) -> bool:
        """Whether ``reason`` is among its rejections."""
        return any(r.reason is reason for r in self.rejections)

    @property
    def rejected_because(self) -> tuple[str, ...]:
        """Its rejections in words, one phrase each."""
        from attune_cli.core.routing.explain import rejection_text

        return tuple(rejection_text(r, self) for r in self.rejections)

    @property
    def not_counted_text(self) -> str | None:
        """Which of its failures do not count against it, in words (None: every one counts)."""
        from attune_cli.core.routing.explain import not_counted_text

        return not_counted_text(self)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of one candidate in ``route explain --json``."""
        return {
            "model": self.model,
            "provider": self.provider,
            "tier": self.tier,
            "calls": self.calls,
            "counted_calls": self.counted_calls,
            "success_rate": _round(self.success_rate, 6),
            "success_lower_bound": _round(self.success_lower_bound, 6),
            "p50_latency_ms": _round(self.p50_latency_ms, 1),
            "p95_latency_ms": _round(self.p95_latency_ms, 1),
            "avg_cost_usd": _round(self.avg_cost_usd, 8),
            "quality_score": _round(self.quality_score, 4),
            "cost_estimated": self.cost_estimated,
            "eligible": self.eligible,
            "rejected_because": list(self.rejected_because),
            "rejections": [r.as_dict() for r in self.rejections],
            "failures": _failures(self.performance),
            "recent_calls": self.recent_calls,
            "recent_failures": self.recent_failures,
            "demoted": self.demoted,
            "would_change": self.would_change.as_dict() if self.would_change else None,
            **_billed(self.performance),
        }


def _billed(perf: ModelPerformance | None) -> dict[str, float | None]:
    """The window's cost split: covered by a subscription plan, or paid per token."""
    if perf is None:
        return {"plan_covered_usd": None, "pay_per_token_usd": None}
    return {
        "plan_covered_usd": _round(perf.plan_covered_usd, 8),
        "pay_per_token_usd": _round(max(perf.cost_usd - perf.plan_covered_usd, 0.0), 8),
    }


@dataclass(frozen=True)
class RoutingDecision:
    """The model chosen for a stage, why, and every candidate considered.

    Attributes:
        workflow: the workflow asked about (None: the stage across all workflows).
        stage: the stage.
        chosen: the model id to call; None when no model is within the caps (or configured):
            then nobody may be called.
        tier: its tier.
        provider: its provider.
        reason: one sentence saying why.
        fallback: True when no candidate qualified on its record and the best model within the
            caps by the registry (the stage's tier first) was used.
        constraints: the caps and settings the decision was made under.
        candidates: every candidate, best first, with figures and verdicts.
        explored: True when exploration picked something other than the best.
        trial: True when the explored model keeps the calls of a trial under way (its newest
            calls keep it promising), rather than being picked for a first try.
        best: the model the router would pick without exploring (None when it fell back).
        default_tier: the stage's default tier.
    """

    workflow: str | None
    stage: str
    chosen: str | None
    tier: str | None
    provider: str | None
    reason: str
    fallback: bool
    constraints: dict[str, Any]
    candidates: list[Candidate]
    explored: bool = False
    trial: bool = False
    best: str | None = None
    default_tier: str = "capable"

    def candidate(self, model: str) -> Candidate | None:
        """The candidate row of ``model``, or None."""
        return next((c for c in self.candidates if c.model == model), None)

    @property
    def within_caps(self) -> bool:
        """Whether a model may be called at all (False: every one is over a cap)."""
        return self.chosen is not None

    def admissible(self, model: str) -> bool:
        """Whether ``model`` may be called under this decision's caps and configuration.

        A model the decision did not consider (no history, another tier) is admissible here;
        the executor still holds it to the cost cap by its registry price.
        """
        found = self.candidate(model)
        return found is None or found.callable_within_caps

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
            "within_caps": self.within_caps,
            "explored": self.explored,
            "trial": self.trial,
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
        best: the model the router would choose now (None: none within the caps).
        default_tier: the stage's default tier.
        models: each model's figures, best score first.
    """

    workflow: str | None
    stage: str
    calls: int
    successes: int
    total_cost_usd: float
    best: str | None
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


def _failures(perf: ModelPerformance | None) -> dict[str, int] | None:
    if perf is None:
        return None
    return {
        "quality": perf.quality_failures,
        "outage": perf.outage_failures,
        "outage_counted": perf.outage_failures_counted,
        "rate_limit": perf.rate_limited,
        "caller_error": perf.caller_errors,
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
