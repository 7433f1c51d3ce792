"""Any name a log can hold renders in every report, and no report emits a control character.

Names are drawn from every Unicode category (surrogates aside: they are not text and cannot be
stored) plus Rich markup fragments, and written straight into the store, as an old version, a
bug or another tool could have. The entry points refuse the unsafe ones; the reports must
still show whatever is already there.
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.errors import UsageError
from attune_cli.core.paths import resolve_paths
from attune_cli.core.safe_text import BIDI_CONTROLS, check_name, visible
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()

CATEGORIES = (
    "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe",
    "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn",
)  # fmt: skip
MARKUP = ("[/]", "[bold]", "[/bold]", "[link=x]", "[", "]", "\\[", "[red on blue]", ":smile:")
characters = st.one_of(
    *(st.characters(categories=[category]) for category in CATEGORIES),  # type: ignore[list-item]
    st.sampled_from(sorted(BIDI_CONTROLS)),
)
names = st.lists(st.one_of(characters, st.sampled_from(MARKUP)), min_size=1, max_size=8).map(
    "".join
)

REPORTS = (
    ["telemetry", "show"],
    ["telemetry", "models"],
    ["route", "stats"],
    ["route", "check"],
    ["route", "breakers"],
)


def shown_unsafely(text: str) -> list[str]:
    """Characters in output that a terminal would obey (line breaks of the layout aside)."""
    return sorted(
        {
            char
            for char in text
            if char != "\n"
            and (unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS)
        }
    )


def seed(name: str) -> None:
    path = resolve_paths().telemetry_db
    path.unlink(missing_ok=True)
    now = time.time()
    with TelemetryStore(path) as store:
        store.record_many(
            CallRecord(
                workflow=name, stage=name, model=name, success=i % 3 != 0, ts=now - 60 * i,
                provider=name, tier="cheap", error_kind=None if i % 3 else name,
                latency_ms=100.0 + i, cost_usd=0.001, source=name,
            )
            for i in range(12)
        )  # fmt: skip
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO breakers (key, state, opened_at, open_until) VALUES (?, 'open', ?, ?)",
            (f"{name}/{name}", now, now + 60),
        )


# Each example runs nine reports: an eighth of the profile's examples (at least 10), so the
# thorough profile (CI) gives it about 40 and a developer's quick run 10.
@settings(
    max_examples=max(10, settings.default.max_examples // 8),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names)
def test_every_report_renders_any_name_without_emitting_a_control_character(
    attune_home: Path, name: str
) -> None:
    seed(name)
    # Reports of the whole store must work; given the name as a flag, a report may also
    # refuse it as bad input (a blank stage: exit 2), but never crash (exit 1).
    reports = [(args, {0}) for args in REPORTS] + [
        (args, {0, 2})
        for args in (
            ["telemetry", "models", "-w", name, "-s", name],
            ["route", "stats", "-w", name, "-s", name],
            ["route", "explain", name, "-w", name],
            ["route", "check", "-w", name],
        )
    ]
    for args, exits in reports:
        result = runner.invoke(app, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            result.exception,
        )
        assert result.exit_code in exits, (args, result.stderr)
        assert shown_unsafely(result.stdout + result.stderr) == [], args
    shown = runner.invoke(app, ["telemetry", "show"], env={"COLUMNS": "400"}).stdout
    assert visible(name).replace("\n", "") in shown.replace("\n", "")


@given(name=names)
def test_a_name_is_refused_at_entry_exactly_when_a_terminal_would_obey_it(name: str) -> None:
    unsafe = any(
        unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS for char in name
    )
    if unsafe:
        with pytest.raises(UsageError, match="control or bidirectional"):
            check_name("model", name)
    else:
        assert check_name("model", name) == name
        assert visible(name) == name
