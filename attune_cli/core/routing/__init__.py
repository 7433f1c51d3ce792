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

With ``explore=True`` exploring judges models by a shorter memory than ranking
(``explore_half_life_hours``): old evidence is uncertain evidence. A share of decisions
(``explore_share``) starts a try of a challenger that could be best (its recent success rate,
taken ``EXPLORE_OPTIMISM`` standard deviations optimistically, beats the leader's): the one
known least about now, so a model that was poor last week is looked at again. The challenger
that took the newest call keeps the calls while its newest calls keep it promising (a
sequential test, ``TRIAL_IMPROVEMENT`` and ``TRIAL_SLACK``), until its own record makes it the
leader or a failure or two drop it. Trials only send calls; ranking alone decides who leads.

Every setting is a key of ``[routing]`` in ``config.toml`` (``RoutingSettings``); README.md,
"Routing: which model should this stage use?", is the reference for each key and its default.
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
