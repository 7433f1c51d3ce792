"""Bars and charts drawn with block characters: a bar per table row, a column chart of a
series, a sparkline per model. Pure functions from numbers to text (no Rich here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

_EIGHTHS = " ▏▎▍▌▋▊▉█"
_RISING = " ▁▂▃▄▅▆▇█"


def bar(value: float, top: float, width: int) -> str:
    """A horizontal bar of ``value`` out of ``top``, ``width`` cells long at most."""
    if top <= 0 or value <= 0 or width <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    full, part = divmod(min(eighths, width * 8), 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def column_chart(values: Sequence[float], *, height: int, width: int) -> tuple[list[str], int]:
    """A column chart of ``values``, ``height`` lines tall and at most ``width`` columns wide.

    When there are more values than columns, each column adds up ``per`` consecutive values.

    Returns:
        (the lines, top to bottom; how many values each column holds).
    """
    per = max(1, math.ceil(len(values) / max(width, 1)))
    columns = [math.fsum(values[i : i + per]) for i in range(0, len(values), per)]
    # A short series gets wider columns (up to 4 cells) and a gap, so it reads as bars.
    repeat = max(1, min(4, width // max(len(columns), 1) - 1)) if per == 1 else 1
    top = max(columns, default=0.0)
    lines = []
    for row in range(height, 0, -1):
        line = []
        for value in columns:
            filled = value / top * height * 8 if top > 0 else 0.0
            eighths = min(8, max(0, round(filled - (row - 1) * 8)))
            if value > 0 and row == 1 and eighths == 0:
                eighths = 1  # a column above zero always shows
            line.append(_RISING[eighths] * repeat + (" " if repeat > 1 else ""))
        lines.append("".join(line).rstrip() if row > 1 else "".join(line))
    return lines, per
