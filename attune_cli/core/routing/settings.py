"""How the router judges candidates: ``[routing]`` in config.toml (see the README)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from attune_cli.core.config import get_number, table
from attune_cli.core.errors import ConfigError, UsageError
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

    One field per key of ``[routing]`` (``stage_tiers`` is ``[routing.stages]``, ``weights``
    ``[routing.score]``). README.md, "Routing: which model should this stage use?", says what
    each key means and its default: that is the one reference; the defaults below must match it.
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
    explore_half_life_hours: float = 24.0
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
            explore_half_life_hours=number("explore_half_life_hours", minimum=0.01),
            advice_recent_calls=number("advice_recent_calls", minimum=1, integer=True),
            upgrade_failure_rate=number("upgrade_failure_rate", maximum=1),
            downgrade_min_calls=number("downgrade_min_calls", minimum=1, integer=True),
            downgrade_margin=number("downgrade_margin", maximum=1),
            default_tier=default_tier,
            stage_tiers=stage_tiers,
            weights=ScoreWeights.from_config(config, path),
        )

    def overridden(
        self,
        *,
        max_cost_usd: float | None = None,
        max_latency_ms: float | None = None,
        min_success_rate: float | None = None,
        window_days: int | None = None,
        weights: ScoreWeights | None = None,
    ) -> RoutingSettings:
        """These settings with a command's flags in place of the keys they name (None: kept).

        Raises:
            UsageError: a flag out of range, named as the command line spells it.
        """
        if max_cost_usd is not None and not 0 <= max_cost_usd < math.inf:
            raise UsageError(
                f"--max-cost must be a finite amount, zero or more (got {max_cost_usd})"
            )
        if max_latency_ms is not None and not 0 <= max_latency_ms < math.inf:
            raise UsageError(
                f"--max-latency must be a finite number of milliseconds, zero or more "
                f"(got {max_latency_ms})"
            )
        if min_success_rate is not None and not 0 <= min_success_rate <= 1:
            raise UsageError(f"--min-success must be between 0 and 1 (got {min_success_rate})")
        if window_days is not None and window_days < 1:
            raise UsageError(f"--days must be at least 1 (got {window_days})")
        changes: dict[str, Any] = {}
        if max_cost_usd is not None:
            changes["max_cost_usd"] = max_cost_usd
        if max_latency_ms is not None:
            changes["max_latency_ms"] = max_latency_ms
        if min_success_rate is not None:
            changes["min_success_rate"] = min_success_rate
        if window_days is not None:
            changes["window_days"] = window_days
        if weights is not None:
            changes["weights"] = weights
        return replace(self, **changes) if changes else self

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
