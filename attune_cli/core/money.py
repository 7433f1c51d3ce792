"""How attune writes an amount of money, the same in every table, reason and message."""

from __future__ import annotations

import math


def format_usd(value: float) -> str:
    """Dollars for a person: ``$1,234.50``, ``$0.0235``, ``$0.00791``, ``$0.000019``.

    A dollar or more gets cents; less gets four decimals, or three significant digits below a
    cent (per-call costs are often fractions of a cent, and ``$0.0000`` would hide them); a
    trailing zero is dropped below a dollar, but never past the cents (``$0.20`` beside
    ``$20.00``, not ``$0.2``). Never scientific notation, never ``-$0``.
    """
    if value == 0 or not math.isfinite(value):
        return "$0" if value == 0 else f"${value}"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    if value >= 0.01:
        text = f"{value:.4f}".rstrip("0")
        text = text + "0" * max(0, 4 - len(text))
    else:
        text = f"{value:.{2 - math.floor(math.log10(value))}f}".rstrip("0")
    return f"{sign}${text}"
