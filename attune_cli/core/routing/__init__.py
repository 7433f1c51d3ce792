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

from attune_cli.core.routing.decision import (
    Candidate,
    ChangeNeeded,
    RoutingDecision,
    RoutingStats,
    StageStats,
    TierAdvice,
)
from attune_cli.core.routing.router import AdaptiveModelRouter
from attune_cli.core.routing.settings import BUILTIN_STAGE_TIERS, DAY_S, RoutingSettings

__all__ = [
    "BUILTIN_STAGE_TIERS",
    "DAY_S",
    "AdaptiveModelRouter",
    "Candidate",
    "ChangeNeeded",
    "RoutingDecision",
    "RoutingSettings",
    "RoutingStats",
    "StageStats",
    "TierAdvice",
]
