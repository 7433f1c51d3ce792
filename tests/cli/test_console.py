"""How a failure reaches the person: one line on stderr and the documented exit code."""

from __future__ import annotations

import pytest

from attune_cli.cli.console import report_failure
from attune_cli.core.errors import ConfigError, OperationError


def test_attune_error_prints_message_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code = report_failure(OperationError("provider down", hint="try later"))
    assert code == 1
    assert capsys.readouterr().err == "Error: provider down\nHint: try later\n"


def test_usage_errors_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    code = report_failure(ConfigError(tmp_path / "config.toml", "bad", key="auth.x", value=3))
    assert code == 2
    assert "config.toml: auth.x: bad (got 3)" in capsys.readouterr().err


def test_unexpected_errors_ask_for_debug_and_show_no_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = report_failure(RuntimeError("secret internals"))
    err = capsys.readouterr().err
    assert code == 1
    assert "ATTUNE_DEBUG=1" in err and "secret internals" not in err


def test_ctrl_c_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_failure(KeyboardInterrupt()) == 130
    assert "Interrupted" in capsys.readouterr().err


def test_debug_mode_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE_DEBUG", "1")
    assert report_failure(RuntimeError("boom")) is None
    assert report_failure(SystemExit(3)) is None
