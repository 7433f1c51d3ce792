"""How attune writes a figure, the same in every table, message and JSON document.

Money has its own module (``core.money``); this one holds the rest: milliseconds, rates,
scores, counts of things, JSON floats and times.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# Significant digits a JSON float keeps: every figure attune measures, never the float noise of
# 0.00010500000000000002 (17 digits).
JSON_DIGITS = 15


def format_ms(value: float) -> str:
    """Milliseconds for a person: ``1,453`` (no unit; callers add " ms" where it reads)."""
    return _no_negative_zero(f"{value:,.0f}")


def format_pct(value: float) -> str:
    """A rate as a percentage with one decimal: ``97.5%``."""
    return _no_negative_zero(f"{value:.1%}")


def format_score(value: float) -> str:
    """A quality score with one decimal, never ``-0.0``."""
    return _no_negative_zero(f"{value:.1f}")


def plural(count: int, noun: str) -> str:
    """``1 day``, ``2 days``, ``1,000 calls``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def iso_time(epoch_s: float | None) -> str | None:
    """A Unix time as ISO-8601 in UTC (``2026-11-30T06:36:50Z``), or None."""
    if epoch_s is None or not math.isfinite(epoch_s):
        return None
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if epoch_s % 1 else "seconds")
    return text.replace("+00:00", "Z")


def json_ready(document: Any) -> Any:
    """``document`` with every float rounded once to ``JSON_DIGITS`` significant digits.

    Non-finite floats become None: attune never writes ``NaN`` or ``Infinity``, which are not
    JSON. ``-0.0`` becomes ``0.0``.
    """
    if isinstance(document, float):
        if not math.isfinite(document):
            return None
        if document == 0:
            return 0.0
        return float(f"{document:.{JSON_DIGITS}g}")
    if isinstance(document, dict):
        return {key: json_ready(value) for key, value in document.items()}
    if isinstance(document, list | tuple):
        return [json_ready(value) for value in document]
    return document


def _no_negative_zero(text: str) -> str:
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        return text[1:]
    return text
