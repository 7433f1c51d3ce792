"""One format for every figure: milliseconds, rates, scores, plurals, JSON floats and times."""

from __future__ import annotations

import json

from attune_cli.core.formats import format_ms, format_score, iso_time, json_ready, plural
from attune_cli.core.money import format_usd


def test_milliseconds_have_thousands_separators() -> None:
    assert format_ms(1453.4) == "1,453"
    assert format_ms(20_000) == "20,000"


def test_no_negative_zero_anywhere() -> None:
    assert format_score(-0.04) == "0.0"
    assert format_ms(-0.2) == "0"
    assert json_ready(-0.0) == 0.0 and str(json_ready(-0.0)) == "0.0"


def test_one_day_is_not_one_days() -> None:
    assert plural(1, "day") == "1 day"
    assert plural(7, "day") == "7 days"
    assert plural(1000, "call") == "1,000 calls"


def test_json_floats_are_rounded_once_and_always_standard() -> None:
    document = {"cost": 0.1 + 0.000005, "list": [0.00010500000000000002], "bad": float("inf")}
    text = json.dumps(json_ready(document), allow_nan=False)
    assert "0.00010500000000000002" not in text
    assert json.loads(text) == {"cost": 0.100005, "list": [0.000105], "bad": None}


def test_times_in_json_are_iso_8601_utc() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00Z"
    assert iso_time(1.5) == "1970-01-01T00:00:01.500Z"
    assert iso_time(None) is None


def test_money_keeps_cents_beside_dollars() -> None:
    assert format_usd(0.2) == "$0.20"
    assert format_usd(20) == "$20.00"
    assert format_usd(-0.5) == "-$0.50"
