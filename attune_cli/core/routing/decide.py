"""The routing decision as a pure function: figures in, ``RoutingDecision`` out, no I/O.

``decide`` takes the per-model figures of a stage (from any store), the registry, the settings
and a random source, and returns the decision with every candidate and its verdict::

    candidates = models with history in the window + the registry's models of the stage's tier
    verdict    = eligible, or the checks it failed (``Reason``), each with its figures
    choice     = the eligible candidate with the best quality_score; with ``explore``, a
                 challenger under trial keeps the calls while its newest calls keep it
                 promising (``on_trial``), and ``explore_share`` of the other decisions start a
                 try of the least-known challenger that could be best by exploring's shorter
                 memory (``challenger``), if there is one
    fallback   = nobody eligible: the best model within the caps (the stage's tier, then
                 cheaper tiers, then dearer ones; in a tier, models without a poor record in
                 registry order, then those below the minimum or demoted by their record, then
                 down ones); a model may be chosen here with too few calls or a poor record
                 (preferences), never over a cap or unconfigured
    nothing    = every model over a cap or unconfigured: ``chosen`` is None, and nobody may be
                 called

The cap checks live in ``cap_rejections`` alone. A model without recorded costs is held to the
cost cap by the registry's price of a reference call (``REFERENCE_CALL_TOKENS``); one whose
price is unknown cannot be shown to be within a cost cap and is ruled out by it. Latency is
checked where it is known (the model's recorded p95).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from attune_cli.core.performance import (
    ModelPerformance,
    wilson_lower_bound,
    wilson_upper_bound,
)
from attune_cli.core.registry import TIERS, Registry, normalise_tier
from attune_cli.core.routing.decision import (
    EXPLORE_OPTIMISM,
    TRIAL_IMPROVEMENT,
    TRIAL_SLACK,
    Candidate,
    Reason,
    Rejection,
    RoutingDecision,
)
from attune_cli.core.routing.explain import decision_reason, where, with_changes
from attune_cli.core.routing.settings import RoutingSettings

REFERENCE_CALL_TOKENS = (1_000, 500)
"""(input, output) tokens of the call a registry price is quoted for when there is no history."""


def decide(
    performances: Iterable[ModelPerformance],
    registry: Registry,
    settings: RoutingSettings,
    rng: random.Random,
    *,
    workflow: str | None,
    stage: str,
    configured: frozenset[str] | None = None,
    explore: bool = False,
    tier: str | None = None,
) -> RoutingDecision:
    """Choose the model for ``stage`` from its figures; see the module docstring.

    Args:
        performances: each model's figures for the stage over the window.
        registry: models, tiers, providers and prices.
        settings: the caps, minimums and weights to judge by.
        rng: the random source for exploration.
        workflow: the workflow the figures are of (None: the stage across all), for words.
        stage: the stage; its default tier comes from ``settings``.
        configured: the providers this machine can call (None: any provider counts as
            callable, as ``--any-provider`` asks).
        explore: keep a promising challenger on trial, and start a try of one for
            ``settings.explore_share`` of the other decisions.
        tier: consider only models of this tier.

    Returns:
        The decision; ``chosen`` is None when every model is over a cap or not configured.
    """
    default_tier = settings.tier_of_stage(stage)
    pool_tier = tier or default_tier
    candidates = [
        judge(perf, registry, settings, configured)
        for perf in performances
        if tier is None or tier_of(registry, perf.model, perf.tier) == tier
    ]
    seen = {c.model for c in candidates}
    for model in registry.by_tier(pool_tier):
        if model.id not in seen:
            candidates.append(registry_candidate(model.id, registry, settings, configured))
            seen.add(model.id)

    eligible = sorted((c for c in candidates if c.eligible), key=_by_score)
    best = eligible[0] if eligible else None
    chosen = best
    explored = trial = False
    if explore:
        sampled = on_trial(candidates, best)
        trial = sampled is not None
        if sampled is None and rng.random() < settings.explore_share:
            sampled = challenger(candidates, best, settings, rng)
        if sampled is not None and sampled is not best:
            chosen, explored = sampled, True

    fallback = chosen is None
    if fallback:
        # Other tiers are looked at (and shown) only when the stage's own tier has nothing
        # within the caps.
        if tier is None and not any(c.callable_within_caps for c in candidates):
            for model_tier in TIERS:
                for model in registry.by_tier(model_tier):
                    if model.id not in seen:
                        candidates.append(
                            registry_candidate(model.id, registry, settings, configured)
                        )
                        seen.add(model.id)
        options = [c for c in candidates if c.callable_within_caps]
        options.sort(key=lambda c: _fallback_key(c, registry, pool_tier))
        chosen = options[0] if options else None

    candidates = with_changes(candidates, best, settings)
    chosen_model = chosen.model if chosen is not None else None
    reason = decision_reason(
        where(workflow, stage),
        pool_tier,
        settings,
        candidates,
        chosen_model,
        best,
        fallback,
        explored,
        trial,
    )
    return RoutingDecision(
        workflow=workflow,
        stage=stage,
        chosen=chosen_model,
        tier=chosen.tier if chosen is not None else None,
        provider=chosen.provider if chosen is not None else None,
        reason=reason,
        fallback=fallback,
        constraints={
            "max_cost_usd": settings.max_cost_usd,
            "max_latency_ms": settings.max_latency_ms,
            "min_success_rate": settings.min_success_rate,
            "min_calls": settings.min_calls,
            "window_days": settings.window_days,
            "half_life_days": settings.half_life_days,
            "outage_memory_hours": settings.outage_memory_hours,
            "recent_calls": settings.recent_calls,
            "explore": explore,
            "explore_share": settings.explore_share,
            "explore_half_life_hours": settings.explore_half_life_hours,
            "any_provider": configured is None,
            "tier": tier,
        },
        candidates=ordered(candidates, chosen_model),
        explored=explored,
        trial=explored and trial,
        best=best.model if best else None,
        default_tier=default_tier,
    )


def cap_rejections(
    cost_usd: float | None, p95_latency_ms: float | None, settings: RoutingSettings
) -> list[Rejection]:
    """The caps a model's figures break: the one place caps are checked.

    Args:
        cost_usd: its cost per call (recorded average, else the registry's reference price);
            None when unknown.
        p95_latency_ms: its p95 latency, None when unknown (not checked then).
        settings: the caps.
    """
    found = []
    latency_cap = settings.max_latency_ms
    if latency_cap is not None and p95_latency_ms is not None and p95_latency_ms > latency_cap:
        found.append(Rejection(Reason.OVER_LATENCY_CAP, p95_latency_ms, latency_cap))
    cap = settings.max_cost_usd
    if cap is not None:
        if cost_usd is None:
            found.append(Rejection(Reason.COST_UNKNOWN, None, cap))
        elif cost_usd > cap:
            found.append(Rejection(Reason.OVER_COST_CAP, cost_usd, cap))
    return found


def reference_cost_usd(registry: Registry, model: str) -> float | None:
    """The registry's price of a reference call to ``model`` (None: not priced)."""
    return registry.cost_usd(model, *REFERENCE_CALL_TOKENS)


def judge(
    perf: ModelPerformance,
    registry: Registry,
    settings: RoutingSettings,
    configured: frozenset[str] | None,
) -> Candidate:
    """A model with history: its figures and every check it fails."""
    weighted_calls = perf.weighted_calls if perf.weighted_calls is not None else perf.judged_calls
    weighted_successes = (
        perf.weighted_successes if perf.weighted_successes is not None else perf.successes
    )
    judged = perf.judged_calls
    # The rate is recency-weighted, but the confidence counts every counted call of the window:
    # a quiet workflow whose calls are all three weeks old has as much evidence as it had then,
    # and must not drop below the minimum merely by ageing.
    weighted_rate = weighted_successes / weighted_calls if weighted_calls > 0 else 0.0
    bound = wilson_lower_bound(weighted_rate * judged, judged)
    demoted = is_demoted(perf, weighted_calls, weighted_successes, settings)
    if demoted:
        bound = min(
            bound,
            wilson_lower_bound(perf.recent_calls - perf.recent_failures, perf.recent_calls),
        )
    provider = perf.provider or registry.provider_of(perf.model)
    rejections = _configured_rejection(provider, configured)
    estimated = perf.avg_cost_usd is None
    cap_cost = reference_cost_usd(registry, perf.model) if estimated else perf.avg_cost_usd
    rejections += cap_rejections(cap_cost, perf.p95_latency_ms, settings)
    down_after = settings.down_after_outages
    if down_after and perf.recent_outage_run >= down_after:
        rejections.append(Rejection(Reason.DOWN, perf.recent_outage_run, down_after))
    # With too few calls the bound says nothing new; a demoted model's newest calls do.
    if bound < settings.min_success_rate and (judged >= settings.min_calls or demoted):
        reason = Reason.DEMOTED if demoted else Reason.SUCCESS_BELOW_MINIMUM
        rejections.append(Rejection(reason, bound, settings.min_success_rate))
    if judged < settings.min_calls:
        rejections.append(Rejection(Reason.TOO_FEW_CALLS, judged, settings.min_calls))
    return Candidate(
        model=perf.model,
        provider=provider,
        tier=tier_of(registry, perf.model, perf.tier),
        calls=perf.calls,
        success_rate=perf.success_rate if judged else None,
        success_lower_bound=bound,
        p50_latency_ms=perf.p50_latency_ms,
        p95_latency_ms=perf.p95_latency_ms,
        avg_cost_usd=perf.avg_cost_usd,
        quality_score=settings.weights.score(bound, perf.avg_cost_usd, perf.p95_latency_ms),
        rejections=tuple(rejections),
        recent_calls=perf.recent_calls,
        recent_failures=perf.recent_failures,
        demoted=demoted,
        weighted_calls=weighted_calls,
        weighted_successes=weighted_successes,
        performance=perf,
    )


def registry_candidate(
    model_id: str,
    registry: Registry,
    settings: RoutingSettings,
    configured: frozenset[str] | None,
) -> Candidate:
    """A registry model without history, priced by the registry."""
    known = registry.model(model_id)
    provider = known.provider if known else registry.provider_of(model_id)
    cost = reference_cost_usd(registry, model_id)
    rejections = _configured_rejection(provider, configured)
    rejections += cap_rejections(cost, None, settings)
    rejections.append(Rejection(Reason.NO_HISTORY))
    return Candidate(
        model=model_id,
        provider=provider,
        tier=known.tier if known else None,
        avg_cost_usd=cost,
        cost_estimated=cost is not None,
        rejections=tuple(rejections),
    )


def is_demoted(
    perf: ModelPerformance,
    weighted_calls: float,
    weighted_successes: float,
    settings: RoutingSettings,
) -> bool:
    """Whether the newest calls fail far more often than the window says.

    The test is one-sided and conservative: the Wilson lower bound of the recent failure rate
    must exceed the window's failure rate by ``demote_margin``. A model failing 10 % of its
    window calls needs 8 failures among its newest 20 (a chance of 1 in 2,500 by luck alone).

    A demotion lasts while those newest calls say so, however old they are. Letting it lapse
    (only calls of the last 12 / 24 / 48 hours counted) was measured on the market simulation
    (seeds 0-23, ``demote_margin`` 0.05, ``recent_calls`` 30): the degraded incumbent's long
    record makes it the leader again at each lapse, and degrade met its target on 0 / 7 / 10
    seeds instead of 22 (mean regret 30.0 / 22.7 / 17.6 against 10.0). In a market where
    nothing changes (rates 0.80 / 0.75 / 0.70) the best model was wrongly demoted in 4.9 % of
    the simulated hours at the defaults and 12.7 % at margin 0.05 with 30 calls (111 to 232
    of the 240 hours on the seeds where it happened): why the quicker test is not the default.
    """
    if perf.recent_calls <= 0 or weighted_calls <= 0:
        return False
    window_failure_rate = 1.0 - weighted_successes / weighted_calls
    recent_bound = wilson_lower_bound(perf.recent_failures, perf.recent_calls)
    return recent_bound > window_failure_rate + settings.demote_margin


def challenger(
    candidates: list[Candidate],
    leader: Candidate | None,
    settings: RoutingSettings,
    rng: random.Random,
) -> Candidate | None:
    """The model worth a try instead of ``leader``: the least known of those that could be best.

    Exploring judges a model by its calls in exploring's memory (``Candidate.explore_counts``:
    weighted by ``explore_half_life_hours``, shorter than ranking's: old evidence is uncertain
    evidence: a model that was poor a week ago may not be poor now). A challenger could be
    best when its success rate taken optimistically (the Wilson upper bound at
    ``EXPLORE_OPTIMISM``; 1 for a model with no calls in that memory) plus its cost and
    latency terms beats the leader's score at the rate ranking gives it. Of those, the one
    with the fewest calls in exploring's memory is tried (ties at random): the model the router
    knows least about now, so that every model is looked at again in turn, not only the one
    closest to the leader. A model without history comes first; one known to be poor recently
    is never tried. Candidates over a cap, not configured or down take no part; when no
    challenger could beat the leader, the leader stays.
    """
    picked, picked_key = None, (-math.inf, 0.0)
    bar = leader_score(leader, settings) if leader is not None else -math.inf
    for c in candidates:
        if not c.eligible_to_try:
            continue
        if leader is not None and c.model == leader.model:
            continue
        if optimistic_score(c, settings) <= bar:
            continue
        key = (-c.explore_counts[1] if c.has_history else math.inf, rng.random())
        if key > picked_key:
            picked, picked_key = c, key
    return picked if picked is not None else leader


def on_trial(candidates: list[Candidate], leader: Candidate | None) -> Candidate | None:
    """The challenger being tried, if it should keep the calls (a sequential test), else None.

    A challenger is being tried when it took the stage's newest call (newer than the leader's
    newest). It keeps the calls while its record in exploring's memory stays as likely under
    "it fails ``TRIAL_IMPROVEMENT`` less often than the leader" as under "it is no better than
    the leader", within a likelihood ratio of ``TRIAL_SLACK`` (in nats): a challenger that
    keeps succeeding is tried until its own record makes it the leader; one that fails about as
    often as the leader, or more, is dropped after a failure or two. Without ``--explore`` no
    trial is run. A model over a cap, not configured, down or demoted is never on trial.
    """
    if leader is None:
        return None
    newest: Candidate | None = None
    newest_ts = -math.inf
    for c in candidates:
        ts = c.performance.newest_ts if c.performance is not None else None
        if ts is not None and ts > newest_ts:
            newest, newest_ts = c, ts
    if newest is None or newest.model == leader.model:
        return None
    if not newest.eligible_to_try or newest.demoted:
        return None
    return newest if trial_evidence(newest, leader) >= -TRIAL_SLACK else None


def trial_evidence(c: Candidate, leader: Candidate) -> float:
    """The log-likelihood ratio of ``c``'s record in exploring's memory for being better.

    ``log P(record | rate p1) - log P(record | rate p0)``, where p0 is the leader's rate as
    ranking weighs it (``Candidate.ranked_rate``: while a challenger is tried the leader gets no
    calls, and its standing must not fade for that) and p1 the rate of a model that fails
    ``TRIAL_IMPROVEMENT`` less often. The leader's rate in exploring's memory, or over its
    newest calls, was measured as p0 too and cost more regret on the market simulation (see
    ``TRIAL_IMPROVEMENT``).
    """
    p0 = min(max(leader.ranked_rate, 1e-6), 1.0 - 1e-6)
    p1 = p0 + (1.0 - p0) * TRIAL_IMPROVEMENT
    successes, calls = c.explore_counts
    failures = max(calls - successes, 0.0)
    return successes * math.log(p1 / p0) + failures * math.log((1.0 - p1) / (1.0 - p0))


def leader_score(leader: Candidate, settings: RoutingSettings) -> float:
    """The leader's score at the rate ranking gives it (what a challenger must beat)."""
    return settings.weights.score(leader.ranked_rate, leader.avg_cost_usd, leader.p95_latency_ms)


def optimistic_score(c: Candidate, settings: RoutingSettings) -> float:
    """``c``'s score with its rate at the Wilson upper bound of exploring's memory."""
    if not c.has_history:
        return settings.weights.score(1.0, c.avg_cost_usd, c.p95_latency_ms)
    successes, calls = c.explore_counts
    rate = wilson_upper_bound(successes, calls, EXPLORE_OPTIMISM)
    return settings.weights.score(rate, c.avg_cost_usd, c.p95_latency_ms)


def ordered(candidates: list[Candidate], chosen: str | None) -> list[Candidate]:
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


def tier_of(registry: Registry, model_id: str, recorded: str | None) -> str | None:
    """A model's tier: the registry's, else the one recorded with its calls."""
    known = registry.model(model_id)
    if known is not None:
        return known.tier
    return normalise_tier(recorded) if recorded else None


def _configured_rejection(
    provider: str | None, configured: frozenset[str] | None
) -> list[Rejection]:
    if configured is None or (provider is not None and provider in configured):
        return []
    return [Rejection(Reason.NOT_CONFIGURED)]


def _by_score(c: Candidate) -> tuple[float, int, str]:
    return (-(c.quality_score or 0.0), -c.calls, c.model)


def _fallback_key(c: Candidate, registry: Registry, tier: str) -> tuple[int, int, float, int, str]:
    """Fallback order: the stage's tier, then cheaper tiers, then dearer.

    Within a tier: models without a poor record in registry order, then those below the
    minimum or demoted (the best record first), then down models last (the best record
    first): a provider that answers nothing is never preferred to one that answers poorly.
    """
    rank = len(TIERS) * 2
    if c.tier in TIERS and tier in TIERS:
        cheaper_by = TIERS.index(tier) - TIERS.index(c.tier)
        rank = cheaper_by if cheaper_by >= 0 else len(TIERS) - cheaper_by
    if c.ruled_out_by(Reason.DOWN):
        severity = 2
    elif c.ruled_out_by(Reason.SUCCESS_BELOW_MINIMUM) or c.ruled_out_by(Reason.DEMOTED):
        severity = 1
    else:
        severity = 0
    record = -(c.quality_score or 0.0) if severity else 0.0
    models = list(registry.models)
    position = models.index(c.model) if c.model in registry.models else len(models)
    return (rank, severity, record, position, c.model)
