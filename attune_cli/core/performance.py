"""Per-model performance figures and the ``quality_score`` that ranks them.

The score (higher is better)::

    quality_score = success_weight · S
                  − cost_weight    · log2(1 + avg_cost_usd / cost_unit_usd)
                  − latency_weight · log2(1 + p95_latency_ms / latency_unit_ms)

where ``S`` is the Wilson lower bound of the success rate at 95 % confidence, so ten lucky calls
(bound 0.72) do not beat a thousand good ones (bound 0.98 at 99 %). Cost and latency count by
doublings: with the default weights each doubling of the cost per call past 0.1 ¢ costs 4
points and each doubling of the p95 latency past one second costs 3, so a $0.03 call scores
about 18 points below a $0.0003 call of equal success, and a model needs a real edge in
reliability to justify being ten times dearer. A model with no recorded cost or latency gets
no penalty for that term.

Weights live in ``config.toml``::

    [routing.score]
    success_weight = 100.0
    cost_weight = 4.0
    cost_unit_usd = 0.001
    latency_weight = 3.0
    latency_unit_ms = 1000.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune_cli.core.config import get_number, table

Z_95 = 1.959963984540054


def wilson_lower_bound(successes: float, calls: float, z: float = Z_95) -> float:
    """Lower bound of the Wilson score interval for a success rate.

    Args:
        successes: successful calls (may be fractional when calls are recency-weighted).
        calls: all calls (the same weighting).
        z: the normal quantile; 1.96 for 95 % confidence.

    Returns:
        A rate in [0, 1]; 0.0 when there are no calls.
    """
    if calls <= 0:
        return 0.0
    centre, margin = _wilson_interval(successes, calls, z)
    return max(0.0, centre - margin)


def wilson_upper_bound(successes: float, calls: float, z: float = Z_95) -> float:
    """Upper bound of the Wilson score interval for a success rate (1.0 with no calls).

    Args:
        successes: successful calls (may be fractional when calls are recency-weighted).
        calls: all calls (the same weighting).
        z: the normal quantile.
    """
    if calls <= 0:
        return 1.0
    centre, margin = _wilson_interval(successes, calls, z)
    return min(1.0, centre + margin)


def _wilson_interval(successes: float, calls: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` in ``calls`` (> 0): (centre, half-width)."""
    p = min(max(successes / calls, 0.0), 1.0)
    z2 = z * z
    scale = 1 + z2 / calls
    centre = (p + z2 / (2 * calls)) / scale
    margin = z * math.sqrt(p * (1 - p) / calls + z2 / (4 * calls * calls)) / scale
    return centre, margin


@dataclass(frozen=True)
class ScoreWeights:
    """The weights of ``quality_score``; see the module docstring for the formula."""

    success_weight: float = 100.0
    cost_weight: float = 4.0
    cost_unit_usd: float = 0.001
    latency_weight: float = 3.0
    latency_unit_ms: float = 1000.0

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> ScoreWeights:
        """Read ``[routing.score]`` from a parsed ``config.toml``.

        Raises:
            ConfigError: a weight that is not a number, negative, or a zero unit.
        """
        section = table(table(config, path, "routing"), path, "score")
        defaults = cls()

        def read(key: str, minimum: float) -> float:
            return get_number(
                section,
                key,
                getattr(defaults, key),
                path=path,
                prefix="routing.score",
                minimum=minimum,
            )

        return cls(
            success_weight=read("success_weight", 0),
            cost_weight=read("cost_weight", 0),
            cost_unit_usd=read("cost_unit_usd", 1e-9),
            latency_weight=read("latency_weight", 0),
            latency_unit_ms=read("latency_unit_ms", 1e-6),
        )

    def score(
        self, success_lower_bound: float, avg_cost_usd: float | None, p95_latency_ms: float | None
    ) -> float:
        """The quality score of these figures (higher is better)."""
        value = self.success_weight * success_lower_bound
        if avg_cost_usd is not None and avg_cost_usd > 0:
            value -= self.cost_weight * math.log2(1 + avg_cost_usd / self.cost_unit_usd)
        if p95_latency_ms is not None and p95_latency_ms > 0:
            value -= self.latency_weight * math.log2(1 + p95_latency_ms / self.latency_unit_ms)
        return value


@dataclass(frozen=True)
class ModelPerformance:
    """How one model did for a (workflow, stage) over a window of calls.

    Attributes:
        model: the model id.
        provider: who served it (None when unknown).
        tier: its registry tier (None when unknown).
        calls: calls in the window.
        successes: successful calls in the window.
        p50_latency_ms: median latency of the window's calls (None when none recorded).
        p95_latency_ms: 95th percentile latency (None when none recorded).
        avg_cost_usd: mean cost per call (None when none recorded).
        weighted_calls: recency-weighted call count (equals ``calls`` when unweighted).
        weighted_successes: recency-weighted successes (equals ``successes`` when unweighted).
        explore_calls: counted calls weighted by exploring's shorter memory
            (``explore_half_life_hours``; None when not read).
        explore_successes: successes weighted the same way.
        recent_calls: how many of the model's newest counted calls ``recent_failures`` looked
            at (calls that count: successes, quality failures, outages within their memory).
        recent_failures: failures among those newest calls.
        newest_ts: when its newest counted call was made (None: unknown).
        recent_outage_run: how many of those newest calls, newest first, are outage failures in
            a row (the provider looks down right now).
        counted_calls: the calls that judge the model: successes, quality failures, and outage
            failures younger than the outage memory (None: every call counts, as before failure
            classes were known).
        quality_failures: failures of the answer itself (long memory).
        outage_failures: the provider could not answer (all in the window, counted or not).
        outage_failures_counted: those younger than the outage memory.
        rate_limited: 429s and other rate limits (never counted).
        caller_errors: requests the provider refused as wrong (never counted).
        newest_outage_ts: when the newest outage failure happened (None: none in the window).
        cost_usd: the window's cost in all.
        plan_covered_usd: the part a subscription plan covered (calls billed ``subscription``,
            priced at what the API would have charged); the rest was paid per token.
        weights: the score weights ``quality_score`` uses.
    """

    model: str
    provider: str | None
    tier: str | None
    calls: int
    successes: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    avg_cost_usd: float | None
    weighted_calls: float | None = None
    weighted_successes: float | None = None
    explore_calls: float | None = None
    explore_successes: float | None = None
    recent_calls: int = 0
    recent_failures: int = 0
    recent_outage_run: int = 0
    newest_ts: float | None = None
    counted_calls: int | None = None
    quality_failures: int = 0
    outage_failures: int = 0
    outage_failures_counted: int = 0
    rate_limited: int = 0
    caller_errors: int = 0
    newest_outage_ts: float | None = None
    cost_usd: float = 0.0
    plan_covered_usd: float = 0.0
    weights: ScoreWeights = field(default_factory=ScoreWeights, compare=False, repr=False)

    @property
    def judged_calls(self) -> int:
        """The calls that judge the model (``counted_calls``, else every call)."""
        return self.calls if self.counted_calls is None else self.counted_calls

    @property
    def success_rate(self) -> float:
        """Success rate over the calls that count (0.0 with none)."""
        judged = self.judged_calls
        return self.successes / judged if judged else 0.0

    @property
    def success_lower_bound(self) -> float:
        """Wilson 95 % lower bound of the (recency-weighted, when given) success rate."""
        if self.weighted_calls is not None and self.weighted_successes is not None:
            return wilson_lower_bound(self.weighted_successes, self.weighted_calls)
        return wilson_lower_bound(self.successes, self.judged_calls)

    @property
    def quality_score(self) -> float:
        """The ranking score: see the module docstring for the formula."""
        return self.weights.score(self.success_lower_bound, self.avg_cost_usd, self.p95_latency_ms)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``telemetry models --json``."""
        return {
            "model": self.model,
            "provider": self.provider,
            "tier": self.tier,
            "calls": self.calls,
            "counted_calls": self.judged_calls,
            "failures": {
                "quality": self.quality_failures,
                "outage": self.outage_failures,
                "outage_counted": self.outage_failures_counted,
                "rate_limit": self.rate_limited,
                "caller_error": self.caller_errors,
            },
            "success_rate": round(self.success_rate, 6),
            "success_lower_bound": round(self.success_lower_bound, 6),
            "p50_latency_ms": self.p50_latency_ms,
            "p95_latency_ms": self.p95_latency_ms,
            "avg_cost_usd": self.avg_cost_usd,
            "quality_score": round(self.quality_score, 4),
            "plan_covered_usd": round(self.plan_covered_usd, 6),
            "pay_per_token_usd": round(max(self.cost_usd - self.plan_covered_usd, 0.0), 6),
        }
