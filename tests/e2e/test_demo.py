"""`attune demo` as a new user runs it: offline, no keys, nothing of theirs touched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_the_whole_loop_offline_without_keys(attune_home: Path) -> None:
    env = {
        **os.environ,
        # The person's own settings must play no part: a dead base URL and a "real" key.
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "ANTHROPIC_API_KEY": "sk-ant-real-key-of-the-user-0000",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "50/50" in out
    for model in ("gpt-5-mini", "claude-haiku-4-5", "flaky-haiku"):
        assert model in out
    assert "$ attune route explain triage --workflow demo" in out
    assert "$ attune route breakers" in out
    assert re.search(r"anthropic/flaky-haiku\s.*open", out), out
    assert "What this showed" in out
    assert "fell back" in out
    assert "sk-ant-real-key-of-the-user-0000" not in out + result.stderr

    home = re.search(r"Throwaway home: (\S+)", out)
    assert home is not None
    assert not Path(home.group(1)).exists()  # the throwaway home is gone
    assert not (attune_home / "telemetry.db").exists()  # the user's home was not touched
