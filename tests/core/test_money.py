from __future__ import annotations

import pytest

from attune_cli.core.money import format_usd


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "$0"),
        (1234.5, "$1,234.50"),
        (1, "$1.00"),
        (0.0235, "$0.0235"),
        (0.03, "$0.03"),
        (0.00791, "$0.00791"),
        (0.005, "$0.005"),
        (0.000019, "$0.000019"),
        (0.0000001234, "$0.000000123"),
    ],
)
def test_amounts_read_the_same_everywhere(value: float, shown: str) -> None:
    assert format_usd(value) == shown


def test_tiny_costs_are_never_scientific_or_rounded_to_zero() -> None:
    text = format_usd(1.9e-05)
    assert "e" not in text and text != "$0"
