"""Words and figures that explain a decision: why this model, and what would change it."""

from __future__ import annotations

import math
from dataclasses import replace

from attune_cli.core.errors import OperationError
from attune_cli.core.money import format_usd
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.routing.decision import (
    Candidate,
    ChangeNeeded,
    Reason,
    Rejection,
    RoutingDecision,
)
from attune_cli.core.routing.settings import RoutingSettings


def rejection_text(rejection: Rejection, candidate: Candidate) -> str:
    """One failed check in words, with its figures (``average cost $0.02 over the $0.01 cap``)."""
    reason, value, limit = rejection.reason, rejection.value, rejection.limit
    if reason is Reason.NOT_CONFIGURED:
        provider = candidate.provider or "its provider"
        return f"not configured ({provider} has no key or base URL)"
    if reason is Reason.OVER_COST_CAP:
        what = (
            "registry price"
            if candidate.cost_estimated or not candidate.has_history
            else ("average cost")
        )
        return f"{what} {_usd(value)} over the {_usd(limit)} cap"
    if reason is Reason.COST_UNKNOWN:
        return f"cost unknown, so not provably within the {_usd(limit)} cap"
    if reason is Reason.OVER_LATENCY_CAP:
        return f"p95 latency {value:,.0f} ms over the {limit:,.0f} ms cap"
    if reason is Reason.DOWN:
        return (
            f"down: its newest {value:.0f} calls were outage failures; it is tried again once "
            "they are older than the outage memory"
        )
    if reason is Reason.DEMOTED:
        return (
            f"success bound {value:.1%} below the {limit:.0%} minimum: "
            f"{candidate.recent_failures} of its newest {candidate.recent_calls} calls failed"
        )
    if reason is Reason.SUCCESS_BELOW_MINIMUM:
        return f"success bound {value:.1%} below the {limit:.0%} minimum"
    if reason is Reason.TOO_FEW_CALLS:
        return f"too few calls ({value:.0f} of {limit:.0f})"
    return "no history"


def caps_summary(candidates: list[Candidate]) -> str:
    """How many models each hard check ruled out, with the nearest miss of each cap.

    ``7 over the $0 cost cap (the cheapest, gpt-5-mini, costs $0.0000188); 2 not configured``.
    """
    parts = []
    for reason in (Reason.OVER_COST_CAP, Reason.OVER_LATENCY_CAP, Reason.COST_UNKNOWN):
        hits: list[tuple[float, str, float | None]] = [
            (r.value if r.value is not None else 0.0, c.model, r.limit)
            for c in candidates
            for r in c.rejections
            if r.reason is reason
        ]
        if not hits:
            continue
        limit = hits[0][2]
        if reason is Reason.OVER_COST_CAP:
            value, model, _ = min(hits)
            parts.append(
                f"{_count(len(hits), 'model')} over the {_usd(limit)} cost cap (the cheapest, "
                f"{model}, costs {_usd(value)})"
            )
        elif reason is Reason.OVER_LATENCY_CAP:
            value, model, _ = min(hits)
            parts.append(
                f"{_count(len(hits), 'model')} over the {limit or 0:,.0f} ms latency cap (the "
                f"fastest, {model}, has a p95 of {value:,.0f} ms)"
            )
        else:
            parts.append(f"{_count(len(hits), 'model')} of unknown price")
    unconfigured = sum(1 for c in candidates if c.ruled_out_by(Reason.NOT_CONFIGURED))
    if unconfigured:
        parts.append(f"{unconfigured} not configured")
    return "; ".join(parts) or "no model left"


def not_counted_text(candidate: Candidate) -> str | None:
    """Which failures do not count against the model, and why; None when all count.

    ``3 outage failures in the last 2 h counted; 12 older outage failures, 4 rate limits and
    1 caller error not counted``.
    """
    perf = candidate.performance
    if perf is None:
        return None
    ignored = []
    old_outages = perf.outage_failures - perf.outage_failures_counted
    if old_outages:
        ignored.append(_count(old_outages, "outage failure") + " older than the outage memory")
    if perf.rate_limited:
        ignored.append(_count(perf.rate_limited, "rate limit"))
    if perf.caller_errors:
        ignored.append(_count(perf.caller_errors, "caller error"))
    cancelled = (
        perf.calls
        - perf.successes
        - perf.quality_failures
        - perf.outage_failures
        - perf.rate_limited
        - perf.caller_errors
    )
    if cancelled > 0:
        ignored.append(_count(cancelled, "cancelled call"))
    parts = []
    if perf.outage_failures_counted:
        parts.append(f"{_count(perf.outage_failures_counted, 'recent outage failure')} counted")
    if ignored:
        parts.append(_join(ignored) + " not counted")
    return "; ".join(parts) if ignored else None


def _usd(amount: float | None) -> str:
    return "an unknown amount" if amount is None else format_usd(amount)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' if number != 1 else ''}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def decision_reason(
    where: str,
    tier: str,
    settings: RoutingSettings,
    candidates: list[Candidate],
    chosen: str | None,
    best: Candidate | None,
    fallback: bool,
    explored: bool,
    trial: bool = False,
) -> str:
    """The one sentence saying why ``chosen`` was picked (or why nobody may be)."""
    if chosen is None:
        unconfigured = all(c.ruled_out_by(Reason.NOT_CONFIGURED) for c in candidates)
        if unconfigured:
            return (
                f"No model for {where} is callable: none of their providers is configured "
                "(a key, or a base URL for a local server)."
            )
        return (
            f"No model within the caps for {where}: every model is over a cap or not "
            f"configured ({_caps(settings)})."
        )
    if explored:
        picked = next(c for c in candidates if c.model == chosen)
        memory = f"the last {_hours(settings.explore_half_life_hours)}"
        if trial and best is not None:
            return (
                f"Trying: {chosen} made the last call for {where} (a try, or a call that named "
                "it) and keeps the calls while its newest calls keep it promising "
                f"({_recent_record(picked)} in {memory}, against {best.model}'s "
                f"{best.ranked_rate:.0%}); it leads once its success bound passes "
                f"{best.model}'s ({best.success_lower_bound or 0.0:.1%}), and is dropped after "
                "a failure or two."
            )
        if best is None:
            why = "no model qualifies yet, and its record is the most promising"
        elif not picked.has_history:
            why = f"never called, it could be anything; {best.model} is the best by its figures"
        else:
            why = (
                f"its record in {memory} ({_recent_record(picked)}) is uncertain enough that it "
                f"may beat {best.model}, the best by its figures; old evidence is uncertain "
                "evidence"
            )
        return f"Exploring: {chosen} could be the best within the caps for {where} ({why})."
    if fallback:
        picked = next(c for c in candidates if c.model == chosen)
        poor = picked.has_history and any(
            picked.ruled_out_by(reason)
            for reason in (Reason.DOWN, Reason.SUCCESS_BELOW_MINIMUM, Reason.DEMOTED)
        )
        if poor:
            # Every model within the caps had a poor record: the least poor one is used.
            down = picked.ruled_out_by(Reason.DOWN)
            default = (
                f"{chosen}, down like every other model within the caps"
                if down
                else f"{chosen}, the best record within the caps"
            )
            if picked.tier != tier:
                default += f" ({picked.tier or 'other'} tier)"
        elif picked.tier == tier:
            default = f"the {tier} tier default {chosen}"
        else:
            default = f"{chosen}, the nearest {picked.tier or 'other'}-tier model within the caps"
        if not any(c.has_history for c in candidates):
            days = settings.window_days
            return (
                f"No history for {where} in the last {days} day{'s' if days != 1 else ''}; "
                f"using {default}."
            )
        ruled_out = "; ".join(
            f"{c.model}: {', '.join(c.rejected_because)}"
            for c in candidates
            if c.rejected_because and c.has_history
        )
        return f"No model qualified for {where} ({ruled_out}), so using {default}."
    assert best is not None
    eligible = sum(1 for c in candidates if c.eligible)
    among = f"among {eligible} eligible models" if eligible > 1 else "as the only eligible model"
    return (
        f"{chosen} has the best quality score ({best.quality_score:.1f}) {among} for {where}: "
        f"{_figures(best)}."
    )


def _recent_record(c: Candidate) -> str:
    """Its calls in exploring's memory in words: ``11.6 of 12.0 weighted calls succeeded``."""
    successes, calls = c.explore_counts
    if calls < 0.05:
        return "hardly any calls"
    return f"{successes:.1f} of {calls:.1f} recency-weighted calls succeeded"


def _hours(hours: float) -> str:
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def _caps(settings: RoutingSettings) -> str:
    caps = []
    if settings.max_cost_usd is not None:
        caps.append(f"cost cap {format_usd(settings.max_cost_usd)} per call")
    if settings.max_latency_ms is not None:
        caps.append(f"p95 latency cap {settings.max_latency_ms:,.0f} ms")
    return ", ".join(caps) if caps else "no caps set"


def with_changes(
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
    blockers = tuple(
        r for r in c.rejections if r.reason not in (Reason.TOO_FEW_CALLS, Reason.NO_HISTORY)
    )
    more_calls = None
    if not c.has_history:
        more_calls = settings.min_calls
    elif c.counted_calls < settings.min_calls:
        more_calls = settings.min_calls - c.counted_calls
    parts: list[str] = []
    if c.ruled_out_by(Reason.NOT_CONFIGURED):
        parts.append(f"{c.provider or 'its provider'} must be configured (a key or a base URL)")
    if c.ruled_out_by(Reason.DOWN):
        parts.append("its outage failures must pass the outage memory (or a call must succeed)")
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


def where(workflow: str | None, stage: str) -> str:
    return (
        f"stage '{stage}' of workflow '{workflow}'"
        if workflow
        else f"stage '{stage}' (all workflows)"
    )


def no_model_within_caps(decision: RoutingDecision) -> OperationError:
    """The error for a decision that leaves nobody to call (exit 1), in one readable line.

    It counts the models each hard check ruled out and names the nearest miss (the cheapest
    over a cost cap, the fastest over a latency cap); ``route explain`` has every model.
    """
    where = f" -w {decision.workflow}" if decision.workflow else ""
    explain = f"`attune route explain {decision.stage}{where}` says why each model was ruled out"
    if all(c.ruled_out_by(Reason.NOT_CONFIGURED) for c in decision.candidates):
        return OperationError(
            f"no model can be called for {decision.stage}: no provider is configured",
            hint="run `attune auth login PROVIDER`, set ANTHROPIC_API_KEY or OPENAI_API_KEY, or "
            "point OPENAI_BASE_URL at a local server; --any-provider ranks the models anyway",
        )
    return OperationError(
        f"no model within the caps for {decision.stage}: {caps_summary(decision.candidates)}",
        hint=f"raise the caps or configure another provider; {explain}",
    )
