"""`attune auth test` and `attune doctor` as real processes against a real server on 127.0.0.1
that accepts one key and rejects every other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.emulator import Behaviour, ProviderEmulator

pytestmark = pytest.mark.e2e

GOOD = "sk-good-key-000011112222"
BAD = "sk-bad-key-999988887777"


@pytest.fixture
def server() -> Iterator[ProviderEmulator]:
    models = {m: Behaviour.healthy() for m in ("claude-haiku-4-5", "gpt-5-mini")}
    with ProviderEmulator(models, api_key=GOOD) as running:
        yield running


def attune(server: ProviderEmulator, *args: str, anthropic_key: str, openai_key: str):
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        "OPENAI_BASE_URL": server.openai_base_url,
        "ANTHROPIC_API_KEY": anthropic_key,
        "OPENAI_API_KEY": openai_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_accepted_and_a_rejected_key_are_told_apart(server: ProviderEmulator) -> None:
    result = attune(server, "auth", "test", anthropic_key=BAD, openai_key=GOOD)

    assert result.returncode == 1
    text = result.stdout
    anthropic, _, openai = text.partition("openai ·")
    assert "✓ reachable: HTTP 401" in anthropic
    assert "✗ key not accepted: sk-…7777 from the environment" in anthropic
    assert "✓ key accepted: sk-…2222 from the environment" in openai
    assert "✓ models listed: gpt-5-mini" in openai
    assert "auth test failed for anthropic" in result.stderr
    assert GOOD not in text + result.stderr and BAD not in text + result.stderr


def test_both_keys_accepted_exit_0_and_json_says_what_was_listed(
    server: ProviderEmulator,
) -> None:
    result = attune(server, "auth", "test", "--json", anthropic_key=GOOD, openai_key=GOOD)

    assert result.returncode == 0, result.stderr
    checks = {c["provider"]: c for c in json.loads(result.stdout)}
    assert checks["anthropic"]["key_accepted"] == "ok"
    assert checks["anthropic"]["listed"] == ["claude-haiku-4-5"]
    assert checks["openai"]["listed"] == ["gpt-5-mini"]
    http = [c for name, c in checks.items() if name != "claude-code"]
    assert all(c["base_url"].startswith("http://127.0.0.1:") for c in http)
    # No claude on this PATH: the subscription path is listed as not found, not failed.
    assert checks["claude-code"]["reachable"] == "skipped" and checks["claude-code"]["ok"]


def test_one_named_provider_is_checked_alone(server: ProviderEmulator) -> None:
    result = attune(server, "auth", "test", "openai", anthropic_key=BAD, openai_key=GOOD)

    assert result.returncode == 0, result.stderr
    assert "anthropic" not in result.stdout


def test_a_server_that_is_down_is_not_reachable(tmp_path: Path) -> None:
    with ProviderEmulator(api_key=GOOD) as gone:
        url = gone.openai_base_url
    env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": GOOD}
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "auth", "test", "openai"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "✗ reachable: cannot connect" in result.stdout


def test_doctor_checks_the_machine_then_every_provider(server: ProviderEmulator) -> None:
    bad = attune(server, "doctor", anthropic_key=BAD, openai_key=GOOD)
    good = attune(server, "doctor", "--json", anthropic_key=GOOD, openai_key=GOOD)

    assert bad.returncode == 1
    assert "✓ config" in bad.stdout and "✗ key not accepted" in bad.stdout
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["ok"] is True
    assert {c["check"] for c in report["checks"]} >= {"config", "telemetry store"}
