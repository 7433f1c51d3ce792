"""Calendar periods in the user's time zone, as epoch-second boundaries.

Days, ISO weeks (Monday first) and months start at local midnight in ``[budgets] timezone``
(an IANA name such as ``Europe/Paris``; the system's zone when unset). The store's rollups
are hours of UTC: a report's window starts and ends exactly where the zone says (the cut
hours at its ends are read from the rows), but inside a report each UTC hour counts for the
day, week or month in which it *begins*. In a zone whose offset is not a whole number of
hours (India +05:30, Nepal +05:45, Newfoundland −03:30) the 30 or 45 minutes after each
local midnight therefore count for the day before in ``spend --by day``; totals and budgets
are exact.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from attune_cli.core.errors import UsageError


class Period(StrEnum):
    """A calendar period."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class Zone:
    """A time zone: an IANA zone, or the system's (``tz`` None).

    Attributes:
        tz: the zone; None is the system's local time (``TZ`` or ``/etc/localtime``).
        name: how it is shown.
    """

    tz: tzinfo | None = None
    name: str = "local"

    @classmethod
    def named(cls, name: str | None) -> Zone:
        """The zone called ``name`` (None or '': the system's).

        Raises:
            ValueError: no such zone.
        """
        if not name:
            return cls()
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return cls(ZoneInfo(name), name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None

    def midnight(self, day: date) -> float:
        """Epoch seconds of local midnight starting ``day``."""
        naive = datetime(day.year, day.month, day.day)
        return (naive if self.tz is None else naive.replace(tzinfo=self.tz)).timestamp()

    def day_of(self, ts: float) -> date:
        """The local date at ``ts``."""
        return datetime.fromtimestamp(ts, self.tz).date()

    def offset_s(self, ts: float) -> int:
        """The zone's UTC offset at ``ts``, in seconds."""
        moment = datetime.fromtimestamp(ts, self.tz)
        offset = (moment if self.tz is not None else moment.astimezone()).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def utc_offsets(self, since_ts: float, until_ts: float) -> tuple[tuple[float, int], ...]:
        """The zone's offsets over ``[since_ts, until_ts)``: (from when, seconds), the first
        from ``-inf``; each change found to the hour (zones change at a whole hour of UTC)."""
        found: list[tuple[float, int]] = [(-math.inf, self.offset_s(since_ts))]
        step = 86_400.0
        before = since_ts
        ts = since_ts + step
        while True:
            at = min(ts, until_ts)
            offset = self.offset_s(at)
            if offset != found[-1][1]:
                low, high = before, at  # the offset changes in (low, high]
                while high - low > 3600:
                    middle = low + (high - low) / 2
                    if self.offset_s(middle) == found[-1][1]:
                        low = middle
                    else:
                        high = middle
                found.append((math.floor(high / 3600) * 3600.0, offset))
            if at >= until_ts:
                return tuple(found)
            before, ts = at, ts + step

    def moment(self, ts: float) -> datetime:
        """``ts`` as an aware local date-time."""
        return datetime.fromtimestamp(ts, self.tz).astimezone(self.tz)


def period_start(day: date, period: Period) -> date:
    """The first day of the ``period`` holding ``day``."""
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def next_start(day: date, period: Period) -> date:
    """The first day of the ``period`` after the one starting ``day``."""
    if period is Period.WEEK:
        return day + timedelta(days=7)
    if period is Period.MONTH:
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day + timedelta(days=1)


def period_key(day: date, period: Period) -> str:
    """How a period is named: ``2026-11-30``, ``2026-W49``, ``2026-11``."""
    if period is Period.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"{day.year}-{day.month:02d}"
    return day.isoformat()


@dataclass(frozen=True)
class Buckets:
    """Consecutive periods covering a window, and which one an hour falls in.

    Attributes:
        keys: each period's name, oldest first.
        starts: each period's start, epoch seconds (then the end of the last one).
    """

    keys: tuple[str, ...]
    starts: tuple[float, ...]

    @classmethod
    def covering(cls, zone: Zone, since_ts: float, until_ts: float, period: Period) -> Buckets:
        """The periods from the one holding ``since_ts`` to the one holding ``until_ts``."""
        day = period_start(zone.day_of(since_ts), period)
        last = zone.day_of(max(since_ts, until_ts - 1e-3))
        keys: list[str] = []
        starts: list[float] = []
        while day <= last:
            keys.append(period_key(day, period))
            starts.append(zone.midnight(day))
            day = next_start(day, period)
        starts.append(zone.midnight(day))
        return cls(tuple(keys), tuple(starts))

    def index_of(self, ts: float) -> int | None:
        """Which period ``ts`` lies in (None: outside them all)."""
        found = bisect_right(self.starts, ts) - 1
        return found if 0 <= found < len(self.keys) else None


def parse_date(text: str, flag: str) -> date:
    """A ``YYYY-MM-DD`` date given to ``flag``.

    Raises:
        UsageError: not such a date (the message names the flag).
    """
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag}: {text[:40]!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2026-11-01"
        ) from None


def zone_from_config(config: dict[str, object], path: object) -> Zone:
    """``[budgets] timezone`` (the system's zone when unset).

    Raises:
        ConfigError: not a string, or not a zone this machine knows (names the key).
    """
    from pathlib import Path

    from attune_cli.core.errors import ConfigError

    section = config.get("budgets", {})
    if not isinstance(section, dict):
        raise ConfigError(Path(str(path)), "must be a table", key="budgets", value=section)
    name = section.get("timezone")
    if name is None:
        return Zone()
    if not isinstance(name, str):
        raise ConfigError(
            Path(str(path)), "must be an IANA time zone name", key="budgets.timezone", value=name
        )
    try:
        return Zone.named(name)
    except ValueError:
        raise ConfigError(
            Path(str(path)),
            "is not a time zone this machine knows",
            key="budgets.timezone",
            value=name,
            hint='use an IANA name such as "Europe/Paris" or "America/New_York"',
        ) from None
