"""The issue's "done when", tried as a new user would: real processes on an empty home."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

KEY = "sk-ant-test-0123456789"


def attune(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("attune")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "attune_cli"]
    return subprocess.run(
        [*argv, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_new_user_sets_up_logs_in_and_asks_for_advice(attune_home: Path, tmp_path: Path) -> None:
    setup = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    assert setup.returncode == 0, setup.stderr
    assert (attune_home / "config.toml").exists()

    status = json.loads(attune("auth", "status", "--json").stdout)
    assert (status["subscription_tier"], status["default_mode"]) == ("max", "auto")
    assert status["setup_completed"] is True

    login = attune("auth", "login", "anthropic", "--with-key-stdin", stdin=KEY)
    assert login.returncode == 0, login.stderr
    credentials = attune_home / "credentials.toml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

    shown = attune("auth", "status")
    shown_json = attune("auth", "status", "--json")
    assert "sk-…6789" in shown.stdout
    assert json.loads(shown_json.stdout)["providers"]["anthropic"]["key_hint"] == "sk-…6789"
    everything = shown.stdout + shown.stderr + shown_json.stdout + login.stdout + login.stderr
    assert KEY not in everything

    source = tmp_path / "big_module.py"
    source.write_text("".join(f"def f{i}():\n    return {i}\n\n" for i in range(1500)))
    advice = json.loads(attune("auth", "recommend", str(source), "--json").stdout)
    assert advice["lines"] == 3000
    assert (advice["size_category"], advice["recommended_mode"]) == ("large", "api")


def test_a_corrupted_config_is_exit_2_naming_the_file(attune_home: Path) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    config = attune_home / "config.toml"
    config.write_text(config.read_text().replace('"max"', '"max'))
    for args in (("auth", "status"), ("auth", "status", "--json"), ("auth", "recommend", ".")):
        result = attune(*args)
        assert result.returncode == 2
        assert str(config) in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
