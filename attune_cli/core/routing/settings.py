"""How the router judges candidates: ``[routing]`` in config.toml (see the README)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune_cli.core.config import get_number, table
from attune_cli.core.errors import ConfigError
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.registry import TIERS, normalise_tier

DAY_S = 86_400.0
HOUR_S = 3_600.0

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
        outage_memory_hours: outage failures (5xx, timeouts, connection errors) older than this
            no longer count against a model, so a provider that recovered soon regains its
            standing; quality failures keep the window's long memory.
        down_after_outages: a model whose newest counted calls are this many outage failures in
            a row is "down" and not chosen on its record until they pass the outage memory
            (0: never).
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
    outage_memory_hours: float = 6.0
    down_after_outages: int = 3
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
            outage_memory_hours=number("outage_memory_hours"),
            down_after_outages=number("down_after_outages", integer=True),
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
