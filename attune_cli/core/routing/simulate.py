"""``attune route simulate``: a routing policy tried on your own history before adopting it.

The window is replayed hour by hour. At each hour the pure ``decide`` is given each model's
figures over the routing window *before* that hour (no peeking), under the proposed caps and
weights, and chooses a model. The hour's calls are then priced and scored as if that model had
served them: with its own figures in that hour when it had calls then, else its figures over
the window before the hour, else (a model with no history) the registry's price of the hour's
average tokens, its success and latency unknown. What actually happened is the recorded calls.

This is an estimate from observed rates, not a counterfactual truth: another model would have
answered other prompts at other times, and its own load and outages would have been different.
It also leaves out what routing does beyond the window's figures (recency weighting, the
newest-calls demotion, outage memory: every outage in the window counts), so it judges the
policy's caps and weights, not the router's short-term reflexes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from attune_cli.core.errors import UsageError
from attune_cli.core.performance import ModelPerformance, ScoreWeights
from attune_cli.core.routing.decide import decide
from attune_cli.core.telemetry import rollups

if TYPE_CHECKING:
    from attune_cli.core.registry import Registry
    from attune_cli.core.routing.settings import RoutingSettings
    from attune_cli.core.telemetry.records import StageHour
    from attune_cli.core.telemetry.store import CallStore

HOUR_S = rollups.HOUR_S
DISAGREEMENTS_SHOWN = 5
_WEIGHT_KEYS = {"success": "success_weight", "cost": "cost_weight", "latency": "latency_weight"}


def parse_score_weights(text: str, base: ScoreWeights) -> ScoreWeights:
    """``--score-weights cost=8,latency=1`` over ``base`` (keys: success, cost, latency).

    Raises:
        UsageError: a key or a number that does not parse (names ``--score-weights``).
    """
    changes: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        name = _WEIGHT_KEYS.get(key.strip().lower())
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if name is None or not math.isfinite(number) or number < 0:
            raise UsageError(
                f"--score-weights: {part.strip()[:40]!r} is not KEY=NUMBER",
                hint="keys are success, cost and latency, e.g. --score-weights cost=8,latency=1",
            )
        changes[name] = number
    return replace(base, **changes)


@dataclass
class Figures:
    """Calls, spend, success and p95 latency of a set of calls (actual or proposed).

    Attributes:
        calls: calls counted.
        cost_usd: what they cost.
        successes: how many succeeded (fractional for the proposed policy: a rate times calls).
        judged_calls: calls whose success is known.
        buckets: latency histogram: bucket → (calls, latency total).
    """

    calls: float = 0.0
    cost_usd: float = 0.0
    successes: float = 0.0
    judged_calls: float = 0.0
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        """Successes over the calls whose outcome is known."""
        return self.successes / self.judged_calls if self.judged_calls else None

    @property
    def p95_latency_ms(self) -> float | None:
        """The 95th percentile latency (within a histogram bucket)."""
        count = sum(c for c, _ in self.buckets.values())
        if count <= 0:
            return None
        return rollups.percentile([], list(self.buckets.values()), count, 95)  # type: ignore[arg-type]

    def add_latencies(self, buckets: dict[int, tuple[float, float]], scale: float) -> None:
        for bucket, (calls, total) in buckets.items():
            have = self.buckets.get(bucket, (0.0, 0.0))
            self.buckets[bucket] = (have[0] + calls * scale, have[1] + total * scale)

    def as_dict(self) -> dict[str, Any]:
        """``{calls, cost_usd, success_rate, p95_latency_ms}``."""
        return {
            "calls": round(self.calls),
            "cost_usd": self.cost_usd,
            "success_rate": self.success_rate,
            "p95_latency_ms": self.p95_latency_ms,
        }


@dataclass(frozen=True)
class Disagreement:
    """An hour in which the proposed policy would have chosen another model."""

    hour: int
    actual_model: str
    proposed_model: str
    calls: int
    actual_cost_usd: float
    proposed_cost_usd: float
    actual_success_rate: float | None
    proposed_success_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        from attune_cli.core.telemetry.records import ts_to_iso

        return {
            "hour": ts_to_iso(self.hour),
            "actual_model": self.actual_model,
            "proposed_model": self.proposed_model,
            "calls": self.calls,
            "actual_cost_usd": self.actual_cost_usd,
            "proposed_cost_usd": self.proposed_cost_usd,
            "actual_success_rate": self.actual_success_rate,
            "proposed_success_rate": self.proposed_success_rate,
        }


@dataclass(frozen=True)
class Simulation:
    """What ``route simulate`` found.

    Attributes:
        workflow: the workflow replayed.
        stage: its stage.
        days: the replayed window.
        constraints: the proposed caps and weights.
        proposed: the proposed policy's figures.
        actual: what happened.
        hours: hours with calls.
        hours_disagreeing: those in which the policy chose another model than the one that
            served most calls.
        unknown_calls: calls priced from the registry, their success and latency unknown.
        chosen: calls per proposed model.
        disagreements: the hours that differ most in cost, most first.
    """

    workflow: str
    stage: str
    days: int
    constraints: dict[str, Any]
    proposed: Figures
    actual: Figures
    hours: int
    hours_disagreeing: int
    unknown_calls: int
    chosen: dict[str, int]
    disagreements: tuple[Disagreement, ...]

    def as_dict(self) -> dict[str, Any]:
        """The ``route simulate --json`` document."""

        def minus(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        proposed, actual = self.proposed, self.actual
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "days": self.days,
            "estimate": "from observed rates per model and hour; not a counterfactual truth",
            "constraints": self.constraints,
            "proposed": proposed.as_dict(),
            "actual": actual.as_dict(),
            "difference": {
                "cost_usd": proposed.cost_usd - actual.cost_usd,
                "success_rate": minus(proposed.success_rate, actual.success_rate),
                "p95_latency_ms": minus(proposed.p95_latency_ms, actual.p95_latency_ms),
            },
            "hours": self.hours,
            "hours_disagreeing": self.hours_disagreeing,
            "unknown_calls": self.unknown_calls,
            "chosen": self.chosen,
            "disagreements": [d.as_dict() for d in self.disagreements],
        }


@dataclass
class _Window:
    """One model's sums over the routing window before the hour being replayed."""

    calls: int = 0
    successes: int = 0
    quality: int = 0
    outage: int = 0
    rate_limited: int = 0
    caller_errors: int = 0
    cost_usd: float = 0.0
    costs: int = 0
    provider: str = ""
    buckets: dict[int, tuple[float, float]] = field(default_factory=dict)

    def add(self, row: StageHour, sign: int) -> None:
        self.calls += sign * row.calls
        self.successes += sign * row.successes
        self.quality += sign * row.quality_failures
        self.outage += sign * row.outage_failures
        self.rate_limited += sign * row.rate_limited
        self.caller_errors += sign * row.caller_errors
        self.cost_usd += sign * row.cost_usd
        self.costs += sign * row.costs
        self.provider = row.provider or self.provider
        for bucket, calls, total in row.buckets:
            have = self.buckets.get(bucket, (0.0, 0.0))
            updated = (have[0] + sign * calls, have[1] + sign * total)
            if updated[0] <= 0:
                self.buckets.pop(bucket, None)
            else:
                self.buckets[bucket] = updated

    def performance(self, model: str, tier: str | None, weights: ScoreWeights) -> ModelPerformance:
        count = sum(c for c, _ in self.buckets.values())
        values = list(self.buckets.values())
        return ModelPerformance(
            model=model,
            provider=self.provider or None,
            tier=tier,
            calls=self.calls,
            successes=self.successes,
            p50_latency_ms=rollups.percentile([], values, count, 50) if count else None,  # type: ignore[arg-type]
            p95_latency_ms=rollups.percentile([], values, count, 95) if count else None,  # type: ignore[arg-type]
            avg_cost_usd=self.cost_usd / self.costs if self.costs else None,
            counted_calls=self.successes + self.quality + self.outage,
            quality_failures=self.quality,
            outage_failures=self.outage,
            outage_failures_counted=self.outage,
            rate_limited=self.rate_limited,
            caller_errors=self.caller_errors,
            weights=weights,
        )


def simulate(
    store: CallStore,
    registry: Registry,
    settings: RoutingSettings,
    *,
    workflow: str,
    stage: str,
    days: int,
    now: float,
) -> Simulation:
    """Replay ``days`` of ``workflow``/``stage`` hour by hour under ``settings``.

    Args:
        store: the history.
        registry: models, tiers and prices.
        settings: the proposed policy (caps, minimums, weights) and its routing window.
        workflow: the workflow.
        stage: the stage.
        days: how many days before now to replay (whole hours; the current hour is left out).
        now: epoch seconds.
    """
    end = rollups.hour_of(now)
    start = end - days * 24 * HOUR_S
    lookback = settings.window_days * 24 * HOUR_S
    rows = store.stage_hours(workflow, stage, start - lookback, end)
    by_hour: dict[int, list[StageHour]] = {}
    for row in rows:
        by_hour.setdefault(row.hour, []).append(row)
    windows: dict[str, _Window] = {}
    proposed, actual = Figures(), Figures()
    disagreements: list[Disagreement] = []
    chosen_calls: Counter[str] = Counter()
    hours = disagreeing = unknown = 0
    rng = random.Random(0)
    for hour in range(start - lookback, end, HOUR_S):
        if hour >= start and hour in by_hour:
            here = by_hour[hour]
            decision = decide(
                (
                    w.performance(model, _tier(registry, model), settings.weights)
                    for model, w in windows.items()
                    if w.calls > 0
                ),
                registry,
                settings,
                rng,
                workflow=workflow,
                stage=stage,
                configured=None,
            )
            hours += 1
            hour_actual = _actual(here)
            _merge(actual, hour_actual)
            if decision.chosen is None:
                continue
            model = decision.chosen
            calls = sum(r.calls for r in here)
            chosen_calls[model] += calls
            hour_proposed, known = _as_if(model, here, windows.get(model), registry)
            unknown += 0 if known else calls
            _merge(proposed, hour_proposed)
            served_most = max(here, key=lambda r: (r.calls, r.model)).model
            if served_most != model:
                disagreeing += 1
                disagreements.append(
                    Disagreement(
                        hour,
                        served_most,
                        model,
                        calls,
                        hour_actual.cost_usd,
                        hour_proposed.cost_usd,
                        hour_actual.success_rate,
                        hour_proposed.success_rate,
                    )
                )
        for row in by_hour.get(hour, ()):
            windows.setdefault(row.model, _Window()).add(row, +1)
        for row in by_hour.get(hour - lookback, ()):
            windows[row.model].add(row, -1)
    disagreements.sort(key=lambda d: (-abs(d.proposed_cost_usd - d.actual_cost_usd), d.hour))
    constraints = {
        "max_cost_usd": settings.max_cost_usd,
        "max_latency_ms": settings.max_latency_ms,
        "min_success_rate": settings.min_success_rate,
        "window_days": settings.window_days,
        "score_weights": {
            "success": settings.weights.success_weight,
            "cost": settings.weights.cost_weight,
            "latency": settings.weights.latency_weight,
        },
    }
    return Simulation(
        workflow,
        stage,
        days,
        constraints,
        proposed,
        actual,
        hours,
        disagreeing,
        unknown,
        dict(chosen_calls.most_common()),
        tuple(disagreements[:DISAGREEMENTS_SHOWN]),
    )


def _tier(registry: Registry, model: str) -> str | None:
    known = registry.model(model)
    return known.tier if known is not None else None


def _histogram(rows: list[StageHour] | tuple[StageHour, ...]) -> dict[int, tuple[float, float]]:
    buckets: dict[int, tuple[float, float]] = {}
    for row in rows:
        for bucket, calls, total in row.buckets:
            have = buckets.get(bucket, (0.0, 0.0))
            buckets[bucket] = (have[0] + calls, have[1] + total)
    return buckets


def _actual(rows: list[StageHour]) -> Figures:
    figures = Figures(
        calls=sum(r.calls for r in rows),
        cost_usd=math.fsum(r.cost_usd for r in rows),
        successes=sum(r.successes for r in rows),
        judged_calls=sum(r.calls for r in rows),
    )
    figures.add_latencies(_histogram(rows), 1.0)
    return figures


def _as_if(
    model: str, rows: list[StageHour], window: _Window | None, registry: Registry
) -> tuple[Figures, bool]:
    """The hour's calls as if ``model`` had served them; False when its figures are unknown."""
    calls = sum(r.calls for r in rows)
    own = [r for r in rows if r.model == model]
    figures = Figures(calls=calls)
    if own and sum(r.calls for r in own):
        served = sum(r.calls for r in own)
        costs = sum(r.costs for r in own)
        per_call = math.fsum(r.cost_usd for r in own) / costs if costs else 0.0
        figures.cost_usd = per_call * calls
        figures.successes = sum(r.successes for r in own) / served * calls
        figures.judged_calls = calls
        histogram = _histogram(own)
        timed = sum(c for c, _ in histogram.values())
        figures.add_latencies(histogram, calls / timed if timed else 0.0)
        return figures, True
    if window is not None and window.calls > 0:
        figures.cost_usd = (window.cost_usd / window.costs if window.costs else 0.0) * calls
        figures.successes = window.successes / window.calls * calls
        figures.judged_calls = calls
        timed = sum(c for c, _ in window.buckets.values())
        figures.add_latencies(window.buckets, calls / timed if timed else 0.0)
        return figures, True
    tokens_in = sum(r.input_tokens for r in rows) / calls if calls else 0
    tokens_out = sum(r.output_tokens for r in rows) / calls if calls else 0
    price = registry.cost_usd(model, round(tokens_in), round(tokens_out)) or 0.0
    figures.cost_usd = price * calls
    return figures, False


def _merge(total: Figures, hour: Figures) -> None:
    total.calls += hour.calls
    total.cost_usd += hour.cost_usd
    total.successes += hour.successes
    total.judged_calls += hour.judged_calls
    total.add_latencies(hour.buckets, 1.0)
