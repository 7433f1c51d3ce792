"""CSV export and spreadsheet formulas: protected by default, exact with --raw-csv, and
undone by the importer so export → import stays exact."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.importers import protect_cell, unprotect_cell
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
T0 = 1_767_225_600.0
FORMULAS = [
    '=HYPERLINK("http://x","y")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "'=quoted",
    "=cmd|' /C calc'!A0",
]


def seed(home: Path) -> None:
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(name, "st", name, True, ts=T0 + i, provider=name, error_kind=name)
            for i, name in enumerate(FORMULAS)
        )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_export_keeps_spreadsheets_from_running_names_as_formulas(attune_home: Path) -> None:
    seed(attune_home)
    result = runner.invoke(app, ["telemetry", "export", "-f", "csv"])
    assert result.exit_code == 0, result.stderr
    exported = rows(result.stdout)
    assert len(exported) == len(FORMULAS)
    for row, name in zip(exported, FORMULAS, strict=True):
        for column in ("workflow", "model", "provider", "error_kind"):
            assert row[column] == "'" + name
            assert not row[column].startswith(("=", "+", "-", "@"))
        assert row["stage"] == "st"  # harmless cells are untouched


def test_raw_csv_writes_each_cell_exactly_as_stored(attune_home: Path) -> None:
    seed(attune_home)
    result = runner.invoke(app, ["telemetry", "export", "-f", "csv", "--raw-csv"])
    assert result.exit_code == 0, result.stderr
    assert [row["model"] for row in rows(result.stdout)] == FORMULAS


def test_a_protected_csv_export_imports_back_exactly(attune_home: Path, tmp_path: Path) -> None:
    seed(attune_home)
    path = tmp_path / "calls.csv"
    assert runner.invoke(app, ["telemetry", "export", "-f", "csv", "-o", str(path)]).exit_code == 0
    before = runner.invoke(app, ["telemetry", "show", "--json"]).stdout
    other = tmp_path / "other-home"
    imported = runner.invoke(
        app, ["telemetry", "import", str(path), "--json"], env={"ATTUNE_HOME": str(other)}
    )
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == len(FORMULAS)
    after = runner.invoke(app, ["telemetry", "show", "--json"], env={"ATTUNE_HOME": str(other)})
    assert json.loads(after.stdout) == json.loads(before)
    assert {call["model"] for call in json.loads(after.stdout)} == set(FORMULAS)


@given(st.text(alphabet=st.sampled_from("'=+-@ab"), max_size=8) | st.text(max_size=8))
def test_the_importer_undoes_exactly_what_the_exporter_added(value: str) -> None:
    cell = protect_cell(value)
    assert unprotect_cell(cell) == value
    assert not cell.startswith(("=", "+", "-", "@"))
