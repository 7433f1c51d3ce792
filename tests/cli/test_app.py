from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from attune_cli import __version__
from attune_cli.cli.app import app

runner = CliRunner()


def test_version_prints_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"attune {__version__}"


def test_help_lists_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("auth", "route", "telemetry"):
        assert group in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


@pytest.mark.e2e
def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout == f"attune {__version__}\n"


@pytest.mark.e2e
def test_console_script_answers_version_without_loading_typer() -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['attune', '--version']\n"
        "from attune_cli.cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'typer' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.splitlines() == [f"attune {__version__}", "exit 0 False"]
