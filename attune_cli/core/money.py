"""How attune writes an amount of money, the same in every table, reason and message."""

from __future__ import annotations

import math


def format_usd(value: float) -> str:
    """Dollars for a person: ``$1,234.50``, ``$0.0235``, ``$0.00791``, ``$0.000019``.

    A dollar or more gets cents; less gets four decimals, or three significant digits below a
    cent (per-call costs are often fractions of a cent, and ``$0.0000`` would hide them); a
    trailing zero is dropped below a dollar. Never scientific notation.
    """
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= 0.01:
        text = f"{value:.4f}"
    else:
        text = f"{value:.{2 - math.floor(math.log10(abs(value)))}f}"
    return "$" + text.rstrip("0").rstrip(".")
