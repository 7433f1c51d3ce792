"""Budgets per workflow (``[budgets.NAME]`` in config.toml) that hold, even under races.

```toml
[budgets]
timezone = "Europe/Paris"   # periods are calendar days and months here (default: the system's)

[budgets.code-review]       # a workflow; "*" for every workflow together
monthly_usd = 50
daily_usd = 5
on_exceed = "refuse"        # or "downgrade": the cheapest model that still qualifies
```

Spent means the money paid per token since the period began: the cost recorded with each call
(calls recorded without a price are priced from the registry, as ``attune spend`` does) less
what a subscription plan covered (calls billed ``subscription``, recorded at their
API-equivalent price: they cost no extra money, so they never count toward a limit and are
reported apart, ``plan_covered_usd``), plus the reservations of calls in flight. A call the
plan covers reserves nothing and is never refused (``attune_cli.core.ask``); only its
pay-per-token fallback, if any, is budgeted. Before a call, ``admit`` reserves the call's
worst-case price (the prompt's size
estimate and ``max_tokens`` at the registry's prices, the dearest model its fallback chain may
reach) in the same transaction that checked the budget (``CallStore.budget_transaction``), so
of two processes racing for the last dollars only one passes. The reservation is released
when the call ends (its real cost is recorded by then) and expires by itself after the call's
deadline when the process dies first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.errors import ConfigError, OperationError
from attune_cli.core.money import format_usd
from attune_cli.core.spend.periods import Period, Zone, next_start, period_start, zone_from_config
from attune_cli.core.spend.report import cell_cost

if TYPE_CHECKING:
    from attune_cli.core.registry import Registry
    from attune_cli.core.telemetry.store import CallStore

EVERY_WORKFLOW = "*"
WARNING_SHARE = 0.8
RECENT_DAYS = 7
DAY_S = 86_400.0


class OnExceed(StrEnum):
    """What ``ask`` does when a call would go over a budget."""

    REFUSE = "refuse"
    DOWNGRADE = "downgrade"


class BudgetState(StrEnum):
    """How a budget stands."""

    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


@dataclass(frozen=True)
class Budget:
    """One ``[budgets.NAME]`` table.

    Attributes:
        name: the workflow it limits, or ``*`` for all of them together.
        limits: (period, dollars) for each limit set (month, then day).
        on_exceed: refuse the call, or downgrade it.
    """

    name: str
    limits: tuple[tuple[Period, float], ...]
    on_exceed: OnExceed = OnExceed.REFUSE

    def applies_to(self, workflow: str) -> bool:
        """Whether a call of ``workflow`` counts against this budget."""
        return self.name in (EVERY_WORKFLOW, workflow)

    @property
    def workflow(self) -> str | None:
        """The workflow whose calls it counts (None: every workflow)."""
        return None if self.name == EVERY_WORKFLOW else self.name


@dataclass(frozen=True)
class BudgetSettings:
    """Every budget, and the time zone of their periods."""

    zone: Zone
    budgets: tuple[Budget, ...]

    @classmethod
    def from_config(cls, config: dict[str, Any], path: Path) -> BudgetSettings:
        """Read ``[budgets]``.

        Raises:
            ConfigError: a limit that is not a finite number of dollars, zero or more; an
                unknown ``on_exceed``; a budget with no limit; an unknown time zone. The
                message names the key (``budgets.code-review.monthly_usd``).
        """
        zone = zone_from_config(config, path)
        section = config.get("budgets", {})
        budgets = []
        for name, entry in section.items() if isinstance(section, dict) else ():
            if name == "timezone":
                continue
            key = f"budgets.{name}"
            if not isinstance(entry, dict):
                raise ConfigError(
                    path, "must be a table", key=key, value=entry, hint=f"[{key}] monthly_usd = 50"
                )
            limits = []
            for period, field in ((Period.MONTH, "monthly_usd"), (Period.DAY, "daily_usd")):
                value = entry.get(field)
                if value is None:
                    continue
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value < 0
                ):
                    raise ConfigError(
                        path,
                        "must be a finite number of dollars, zero or more",
                        key=f"{key}.{field}",
                        value=value,
                    )
                limits.append((period, float(value)))
            if not limits:
                raise ConfigError(
                    path,
                    "sets no limit",
                    key=key,
                    hint=f"add monthly_usd or daily_usd under [{key}]",
                )
            raw = entry.get("on_exceed", OnExceed.REFUSE.value)
            try:
                on_exceed = OnExceed(raw) if isinstance(raw, str) else None
            except ValueError:
                on_exceed = None
            if on_exceed is None:
                raise ConfigError(
                    path, 'must be "refuse" or "downgrade"', key=f"{key}.on_exceed", value=raw
                )
            budgets.append(Budget(str(name), tuple(limits), on_exceed))
        return cls(zone, tuple(budgets))

    def for_workflow(self, workflow: str) -> tuple[Budget, ...]:
        """The budgets a call of ``workflow`` counts against."""
        return tuple(b for b in self.budgets if b.applies_to(workflow))


def period_bounds(zone: Zone, now: float, period: Period) -> tuple[float, float]:
    """The start and end (epoch seconds) of the calendar ``period`` holding ``now``."""
    first = period_start(zone.day_of(now), period)
    return zone.midnight(first), zone.midnight(next_start(first, period))


def spent_usd(
    store: CallStore, registry: Registry, budget: Budget, since_ts: float, until_ts: float
) -> tuple[float, float]:
    """What the calls counted by ``budget`` cost in ``[since_ts, until_ts)``.

    Returns:
        (paid per token, covered by a subscription plan at its API-equivalent price). Only
        the first counts toward a limit.
    """
    cells = store.spend_cells(since_ts, until_ts, workflow=budget.workflow)
    paid: list[float] = []
    covered: list[float] = []
    for cell in cells:
        cost = cell_cost(cell, registry)[0]
        paid.append(max(cost - cell.plan_cost_usd, 0.0))
        covered.append(cell.plan_cost_usd)
    return math.fsum(paid), math.fsum(covered)


@dataclass(frozen=True)
class BudgetStatus:
    """One limit of one budget, now.

    Attributes:
        budget: its name.
        period: day or month.
        limit_usd: the limit.
        spent_usd: paid per token since the period began (plan-covered calls left out).
        reserved_usd: held by calls in flight.
        period_start_ts: when the period began.
        resets_at_ts: when the next one begins.
        now_ts: when this was read.
        recent_usd: paid per token in the last ``RECENT_DAYS`` days.
        on_exceed: what ``ask`` does past it.
        plan_covered_usd: what calls covered by a subscription plan would have cost on the
            API since the period began (shown apart; not counted toward the limit).
    """

    budget: str
    period: Period
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    period_start_ts: float
    resets_at_ts: float
    now_ts: float
    recent_usd: float
    on_exceed: OnExceed
    plan_covered_usd: float = 0.0

    @property
    def left_usd(self) -> float:
        """What is left (never below zero)."""
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)

    @property
    def exhausted(self) -> bool:
        """Whether nothing is left: not even a call priced at $0 (a model without registry
        prices) may go through."""
        return self.spent_usd + self.reserved_usd >= self.limit_usd

    def fits(self, cost_usd: float) -> bool:
        """Whether ``cost_usd`` more stays within this limit."""
        return not self.exhausted and cost_usd <= self.left_usd

    @property
    def burn_usd_per_day(self) -> float:
        """Spend per day over the period so far."""
        elapsed = max(self.now_ts - self.period_start_ts, 1.0)
        return self.spent_usd / elapsed * DAY_S

    @property
    def recent_burn_usd_per_day(self) -> float:
        """Spend per day over the last ``RECENT_DAYS`` days."""
        return self.recent_usd / RECENT_DAYS

    @property
    def projected_usd(self) -> float:
        """The period's total if it goes on as it went so far (linear)."""
        return self.burn_usd_per_day * (self.resets_at_ts - self.period_start_ts) / DAY_S

    @property
    def projected_recent_usd(self) -> float:
        """The period's total if the rest goes at the last seven days' rate."""
        left_s = max(self.resets_at_ts - self.now_ts, 0.0)
        return self.spent_usd + self.recent_burn_usd_per_day * left_s / DAY_S

    @property
    def state(self) -> BudgetState:
        """Exceeded at the limit, a warning from ``WARNING_SHARE`` of it."""
        if self.spent_usd >= self.limit_usd:
            return BudgetState.EXCEEDED
        if self.spent_usd >= WARNING_SHARE * self.limit_usd:
            return BudgetState.WARNING
        return BudgetState.OK

    def as_dict(self, zone: Zone) -> dict[str, Any]:
        """One entry of ``budget status --json``."""
        return {
            "budget": self.budget,
            "period": str(self.period),
            "limit_usd": self.limit_usd,
            "spent_usd": self.spent_usd,
            "plan_covered_usd": self.plan_covered_usd,
            "reserved_usd": self.reserved_usd,
            "left_usd": self.left_usd,
            "burn_usd_per_day": self.burn_usd_per_day,
            "projected_usd": self.projected_usd,
            "recent_burn_usd_per_day": self.recent_burn_usd_per_day,
            "projected_recent_usd": self.projected_recent_usd,
            "state": str(self.state),
            "on_exceed": str(self.on_exceed),
            "period_start": zone.moment(self.period_start_ts).isoformat(timespec="seconds"),
            "resets_at": zone.moment(self.resets_at_ts).isoformat(timespec="seconds"),
        }


def status(
    store: CallStore, registry: Registry, settings: BudgetSettings, now: float
) -> list[BudgetStatus]:
    """Every limit of every budget, as it stands at ``now``."""
    return _limits(store, registry, settings, settings.budgets, now)


class BudgetExceeded(OperationError):
    """A call would take a budget past its limit (exit 1; nothing was called)."""


@dataclass(frozen=True)
class Admission:
    """What a budget check let through.

    Attributes:
        model: the model to call (another than asked when downgraded).
        cap_usd: no attempt may cost more than this (what was reserved).
        reservation_id: the reservation to release when the call ends (None: nothing held).
        downgraded_from: the model asked for, when the budget chose a cheaper one.
        left_usd: what the tightest budget had left before this call.
    """

    model: str
    cap_usd: float
    reservation_id: str | None
    downgraded_from: str | None
    left_usd: float


def _limits(
    store: CallStore,
    registry: Registry,
    settings: BudgetSettings,
    budgets: Sequence[Budget],
    now: float,
    *,
    recent: bool = True,
) -> list[BudgetStatus]:
    """Each limit of ``budgets`` as it stands (inside the caller's budget transaction;
    ``recent``: with the last seven days' spend, which ``ask`` does not need)."""
    found = []
    for budget in budgets:
        reserved = store.reserved_usd(budget.name, now)
        recent_usd = (
            spent_usd(store, registry, budget, now - RECENT_DAYS * DAY_S, math.inf)[0]
            if recent
            else 0.0
        )
        for period, limit in budget.limits:
            start, end = period_bounds(settings.zone, now, period)
            spent, covered = spent_usd(store, registry, budget, start, math.inf)
            found.append(
                BudgetStatus(
                    budget.name,
                    period,
                    limit,
                    spent,
                    reserved,
                    start,
                    end,
                    now,
                    recent_usd,
                    budget.on_exceed,
                    covered,
                )
            )
    return found


def admit(
    store: CallStore,
    registry: Registry,
    settings: BudgetSettings,
    workflow: str,
    choices: Sequence[tuple[str, float]],
    *,
    now: float,
    hold_s: float,
) -> Admission:
    """Check the budgets of ``workflow`` and reserve a call's worst case, in one transaction.

    Args:
        store: where spend and reservations are.
        registry: prices for calls recorded without one.
        settings: the budgets.
        workflow: the call's workflow.
        choices: (model, worst-case price) of the model asked for first, then the models its
            call may fall back to (or be downgraded to) within the other caps.
        now: epoch seconds.
        hold_s: how long the reservation lives if never released (the call's deadline and a
            margin).

    Returns:
        The model to call, the cap on each attempt and the reservation to release.

    Raises:
        BudgetExceeded: even the cheapest allowed choice would go over (or ``refuse`` and the
            asked-for model would): what was spent, the limit, when it resets.
    """
    budgets = settings.for_workflow(workflow)
    asked, asked_usd = choices[0]
    with store.budget_transaction():
        limits = _limits(store, registry, settings, budgets, now, recent=False)
        if not limits:
            return Admission(asked, math.inf, None, None, math.inf)
        tightest = min(limits, key=lambda limit: (not limit.exhausted, limit.left_usd))
        left = tightest.left_usd
        fitting = [(model, usd) for model, usd in choices if tightest.fits(usd)]
        chosen: str | None = None
        if tightest.fits(asked_usd):
            chosen = asked
        elif fitting and tightest.on_exceed is OnExceed.DOWNGRADE:
            chosen = min(fitting, key=lambda choice: choice[1])[0]
        if chosen is None:
            raise _exceeded(tightest, asked, asked_usd, settings.zone, bool(fitting))
        amount = max(usd for _, usd in fitting)
        reservation = os.urandom(8).hex()
        for budget in budgets:
            store.add_reservation(reservation, budget.name, amount, now, now + hold_s)
    return Admission(chosen, amount, reservation, None if chosen == asked else asked, left)


def _exceeded(
    limit: BudgetStatus, model: str, worst_usd: float, zone: Zone, cheaper: bool
) -> BudgetExceeded:
    period = "monthly" if limit.period is Period.MONTH else "daily"
    held = (
        f" (+{format_usd(limit.reserved_usd)} held by calls in flight)"
        if limit.reserved_usd
        else ""
    )
    resets = zone.moment(limit.resets_at_ts).strftime("%Y-%m-%d %H:%M %Z").strip()
    hint = (
        f'set on_exceed = "downgrade" under [budgets.{limit.budget}] to use a cheaper model'
        if cheaper
        else f"raise [budgets.{limit.budget}] {period}_usd, lower --max-tokens, or wait"
    )
    return BudgetExceeded(
        f"budget {limit.budget!r} ({period} {format_usd(limit.limit_usd)}): "
        f"{format_usd(limit.spent_usd)} spent{held}, {model} could cost "
        f"{format_usd(worst_usd)}; it resets at {resets}",
        hint=hint,
    )


def check(
    store: CallStore,
    registry: Registry,
    settings: BudgetSettings,
    workflow: str,
    cost_usd: float,
    *,
    now: float,
    hold_s: float = 0.0,
) -> tuple[bool, list[BudgetStatus]]:
    """Whether ``cost_usd`` more for ``workflow`` stays within every budget (what
    ``attune budget check`` answers), holding it for ``hold_s`` seconds when it does.

    Returns:
        (within every budget, the limits that apply, as they stand).
    """
    budgets = settings.for_workflow(workflow)
    with store.budget_transaction():
        limits = _limits(store, registry, settings, budgets, now)
        within = all(s.fits(cost_usd) for s in limits)
        if within and hold_s > 0 and budgets:
            reservation = os.urandom(8).hex()
            for budget in budgets:
                store.add_reservation(reservation, budget.name, cost_usd, now, now + hold_s)
    return within, limits
