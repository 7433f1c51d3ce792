"""``attune spend``: what was spent, when and where, from the hourly rollups.

A report covers a window (``--days N`` ending now, or ``--since``/``--until`` dates) in the
user's time zone (``periods``), grouped by a period (day, week, month: every period of the
window is a row, those without calls at zero) or by a name (model, provider, workflow, stage,
tier). Each row carries the same figures for the period before it: for a name, its spend in
the window of the same length just before; for a period, the period just before.

Costs are the ones recorded with each call. A call recorded without a price but with its
token counts (an import from a tool that keeps no cost) is priced from the registry, and
that part is reported apart (``estimated_usd``), never mixed in silently. An hour's rollup
that holds both priced and unpriced calls keeps token sums for all of them together, so its
unpriced calls are not estimated (exact rows at a window's edges always are).

Calls billed to a subscription plan carry what the API would have charged: that part of the
cost is reported apart (``plan_covered_usd``, what the plan saved); the rest
(``pay_per_token_usd``, estimates included) is what was paid per token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from attune_cli.core.errors import UsageError
from attune_cli.core.spend.periods import Buckets, Period, Zone, period_start

if TYPE_CHECKING:
    from attune_cli.core.registry import Registry
    from attune_cli.core.telemetry.records import SpendCell
    from attune_cli.core.telemetry.store import CallStore

DEFAULT_DAYS = 30


class GroupBy(StrEnum):
    """What a spend report's rows are."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    MODEL = "model"
    PROVIDER = "provider"
    WORKFLOW = "workflow"
    STAGE = "stage"
    TIER = "tier"

    @property
    def period(self) -> Period | None:
        """The calendar period of a time series (None: rows are names)."""
        return Period(self.value) if self.value in Period.__members__.values() else None

    @classmethod
    def parse(cls, text: str) -> GroupBy:
        """``--by``'s value.

        Raises:
            UsageError: not one of the values (the message names ``--by``).
        """
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise UsageError(
                f"--by: {text[:40]!r} is not one of {', '.join(g.value for g in cls)}"
            ) from None


@dataclass(frozen=True)
class Window:
    """The times a report covers: ``[since_ts, until_ts)``, epoch seconds."""

    since_ts: float
    until_ts: float

    @property
    def length_s(self) -> float:
        """How long it is."""
        return self.until_ts - self.since_ts

    @classmethod
    def of(
        cls,
        zone: Zone,
        now: float,
        *,
        days: int | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> Window:
        """The window of ``--days`` (the last N calendar days, today included, up to now) or
        ``--since`` (from that day's midnight) to ``--until`` (through the end of that day;
        default: now).

        Raises:
            UsageError: both or neither kind given, ``--days`` below 1, or ``--since`` after
                ``--until`` (each message names the flag).
        """
        if days is not None and (since is not None or until is not None):
            raise UsageError("--days cannot be combined with --since/--until", hint="use one")
        if until is not None and since is None:
            raise UsageError("--until needs --since", hint="e.g. --since 2026-11-01")
        if since is None:
            count = DEFAULT_DAYS if days is None else days
            if count < 1:
                raise UsageError(f"--days must be 1 or more (got {count})")
            first = zone.day_of(now) - timedelta(days=count - 1)
            return cls(zone.midnight(first), now)
        if until is not None and since > until:
            raise UsageError(f"--since {since} is after --until {until}")
        end = now if until is None else zone.midnight(until + timedelta(days=1))
        return cls(zone.midnight(since), end)


@dataclass(frozen=True)
class SpendQuery:
    """What ``attune spend`` was asked for.

    Attributes:
        window: the times covered.
        by: what the rows are.
        workflow: only this workflow.
        stage: only this stage.
        model: only this model.
    """

    window: Window
    by: GroupBy = GroupBy.DAY
    workflow: str | None = None
    stage: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class SpendRow:
    """One row of a report.

    Attributes:
        key: the period (``2026-11-30``, ``2026-W49``, ``2026-11``) or the name.
        calls: calls recorded.
        cost_usd: what they cost (estimated part included).
        estimated_usd: the part of ``cost_usd`` priced from the registry.
        previous_cost_usd: the same figure one period (or one window) earlier.
        plan_covered_usd: the part of ``cost_usd`` a subscription plan covered.
    """

    key: str
    calls: int
    cost_usd: float
    estimated_usd: float
    previous_cost_usd: float
    plan_covered_usd: float = 0.0

    @property
    def pay_per_token_usd(self) -> float:
        """The part of ``cost_usd`` paid per token (what the plan did not cover)."""
        return max(self.cost_usd - self.plan_covered_usd, 0.0)

    @property
    def cost_per_call_usd(self) -> float | None:
        """Cost per call (None without calls)."""
        return self.cost_usd / self.calls if self.calls else None

    @property
    def change(self) -> float | None:
        """Relative change against the previous figure (None when that was zero)."""
        if self.previous_cost_usd <= 0:
            return None
        return self.cost_usd / self.previous_cost_usd - 1


@dataclass(frozen=True)
class SpendReport:
    """What ``attune spend`` shows.

    Attributes:
        query: what was asked.
        zone: the time zone of its periods.
        rows: the rows (periods oldest first; names dearest first).
        previous_total_usd: the window of the same length just before.
        series: per model, its cost in each period (time series only), dearest model first.
        unpriced_calls: calls with token counts but no price, recorded or in the registry
            (counted at $0).
    """

    query: SpendQuery
    zone: Zone
    rows: tuple[SpendRow, ...]
    previous_total_usd: float
    series: tuple[tuple[str, tuple[float, ...]], ...] = field(default=())
    unpriced_calls: int = 0

    @property
    def calls(self) -> int:
        """Calls in the window."""
        return sum(r.calls for r in self.rows)

    @property
    def total_usd(self) -> float:
        """Spend in the window."""
        return math.fsum(r.cost_usd for r in self.rows)

    @property
    def estimated_usd(self) -> float:
        """The part of it priced from the registry."""
        return math.fsum(r.estimated_usd for r in self.rows)

    @property
    def plan_covered_usd(self) -> float:
        """The part of the spend a subscription plan covered."""
        return math.fsum(r.plan_covered_usd for r in self.rows)

    @property
    def pay_per_token_usd(self) -> float:
        """The part of the spend paid per token."""
        return math.fsum(r.pay_per_token_usd for r in self.rows)

    def share(self, row: SpendRow) -> float:
        """``row``'s part of the total (0 when nothing was spent)."""
        total = self.total_usd
        return row.cost_usd / total if total > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``spend --json`` document."""
        window = self.query.window
        return {
            "since": self.zone.moment(window.since_ts).isoformat(timespec="seconds"),
            "until": self.zone.moment(window.until_ts).isoformat(timespec="seconds"),
            "timezone": self.zone.name,
            "by": str(self.query.by),
            "calls": self.calls,
            "total_usd": self.total_usd,
            "estimated_usd": self.estimated_usd,
            "plan_covered_usd": self.plan_covered_usd,
            "pay_per_token_usd": self.pay_per_token_usd,
            "previous_total_usd": self.previous_total_usd,
            "unpriced_calls": self.unpriced_calls,
            "rows": [
                {
                    "key": r.key,
                    "calls": r.calls,
                    "cost_usd": r.cost_usd,
                    "share": self.share(r),
                    "cost_per_call_usd": r.cost_per_call_usd,
                    "previous_cost_usd": r.previous_cost_usd,
                    "estimated": r.estimated_usd > 0,
                    "estimated_usd": r.estimated_usd,
                    "plan_covered_usd": r.plan_covered_usd,
                    "pay_per_token_usd": r.pay_per_token_usd,
                }
                for r in self.rows
            ],
            "series": [{"model": m, "cost_usd": list(costs)} for m, costs in self.series],
        }


@dataclass
class _Sum:
    calls: int = 0
    cost_usd: float = 0.0
    estimated_usd: float = 0.0
    plan_covered_usd: float = 0.0

    def add(self, cell: SpendCell, cost: float, estimated: float) -> None:
        self.calls += cell.calls
        self.cost_usd += cost
        self.estimated_usd += estimated
        self.plan_covered_usd += cell.plan_cost_usd


def cell_cost(cell: SpendCell, registry: Registry) -> tuple[float, float]:
    """(cost, estimated part) of a cell: recorded costs plus the registry's price of the
    tokens of calls recorded without one."""
    estimated = 0.0
    if cell.unpriced_input_tokens or cell.unpriced_output_tokens:
        priced = registry.cost_usd(
            cell.model, cell.unpriced_input_tokens, cell.unpriced_output_tokens
        )
        estimated = priced or 0.0
    return cell.cost_usd + estimated, estimated


def unpriced_calls(cell: SpendCell, registry: Registry) -> int:
    """Calls of a cell that had tokens but neither a recorded nor a registry price."""
    if not (cell.unpriced_input_tokens or cell.unpriced_output_tokens):
        return 0
    return 0 if registry.model(cell.model) is not None else cell.calls - cell.priced_calls


def build_report(
    store: CallStore, registry: Registry, query: SpendQuery, zone: Zone
) -> SpendReport:
    """Read the window (and the one before it) and make the report."""
    window = query.window
    group = (
        str(query.by) if query.by in (GroupBy.PROVIDER, GroupBy.WORKFLOW, GroupBy.STAGE) else None
    )

    period = query.by.period

    def read(since_ts: float, until_ts: float) -> list[SpendCell]:
        return store.spend_cells(
            since_ts,
            until_ts,
            group=group,
            workflow=query.workflow,
            stage=query.stage,
            model=query.model,
            day_offsets=None if period is None else zone.utc_offsets(since_ts, until_ts),
        )

    current = read(window.since_ts, window.until_ts)
    previous = read(window.since_ts - window.length_s, window.since_ts)
    previous_total = math.fsum(cell_cost(c, registry)[0] for c in previous)
    unpriced = sum(unpriced_calls(c, registry) for c in current)
    if period is None:
        rows = _by_name(current, previous, query.by, registry)
        return SpendReport(query, zone, rows, previous_total, unpriced_calls=unpriced)
    buckets = Buckets.covering(zone, window.since_ts, window.until_ts, period)
    sums = [_Sum() for _ in buckets.keys]
    series: dict[str, list[float]] = {}
    for cell in current:
        index = buckets.index_of(max(float(cell.hour), window.since_ts))
        if index is None:
            continue
        cost, estimated = cell_cost(cell, registry)
        sums[index].add(cell, cost, estimated)
        series.setdefault(cell.model, [0.0] * len(sums))[index] += cost
    before_first = _previous_period_cost(read, registry, zone, buckets.starts[0], period)
    series_rows = []
    for index, key in enumerate(buckets.keys):
        found = sums[index]
        prior = before_first if index == 0 else sums[index - 1].cost_usd
        series_rows.append(
            SpendRow(
                key,
                found.calls,
                found.cost_usd,
                found.estimated_usd,
                prior,
                found.plan_covered_usd,
            )
        )
    ordered = sorted(series.items(), key=lambda item: (-math.fsum(item[1]), item[0]))
    return SpendReport(
        query,
        zone,
        tuple(series_rows),
        previous_total,
        tuple((model, tuple(costs)) for model, costs in ordered),
        unpriced,
    )


def _previous_period_cost(
    read: Callable[[float, float], list[SpendCell]],
    registry: Registry,
    zone: Zone,
    first_start: float,
    period: Period,
) -> float:
    """The cost of the whole period before the first one of a series."""
    start = zone.midnight(period_start(zone.day_of(first_start) - timedelta(days=1), period))
    return math.fsum(cell_cost(c, registry)[0] for c in read(start, first_start))


def _by_name(
    current: Sequence[SpendCell],
    previous: Sequence[SpendCell],
    by: GroupBy,
    registry: Registry,
) -> tuple[SpendRow, ...]:
    def key_of(cell: SpendCell) -> str:
        if by is GroupBy.MODEL:
            return cell.model
        if by is GroupBy.TIER:
            known = registry.model(cell.model)
            return known.tier if known is not None else "unknown"
        return cell.group or "(none)"

    sums: dict[str, _Sum] = {}
    for cell in current:
        cost, estimated = cell_cost(cell, registry)
        sums.setdefault(key_of(cell), _Sum()).add(cell, cost, estimated)
    before: dict[str, float] = {}
    for cell in previous:
        key = key_of(cell)
        before[key] = before.get(key, 0.0) + cell_cost(cell, registry)[0]
    rows = [
        SpendRow(
            key, s.calls, s.cost_usd, s.estimated_usd, before.get(key, 0.0), s.plan_covered_usd
        )
        for key, s in sums.items()
    ]
    rows.sort(key=lambda r: (-r.cost_usd, r.key))
    return tuple(rows)


def sparkline(values: Sequence[float]) -> str:
    """One character per value, ``▁`` (nothing) up to ``█`` (the largest)."""
    marks = "▁▂▃▄▅▆▇█"
    top = max(values, default=0.0)
    if top <= 0:
        return marks[0] * len(values)
    return "".join(
        marks[min(len(marks) - 1, math.ceil(v / top * (len(marks) - 1)))] for v in values
    )
