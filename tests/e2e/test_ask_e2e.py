"""`attune ask` as a real process against the provider emulator on 127.0.0.1, with scripted faults.

Base URLs come from OPENAI_BASE_URL / ANTHROPIC_BASE_URL or config.toml, as a user sets them;
telemetry is read back from the real SQLite file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.reliability import attune_in_process

from attune_cli.emulator import (
    Behaviour,
    Drop,
    Fail,
    Malformed,
    ProviderEmulator,
    Reply,
    StreamError,
)

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-e2e-0123456789abcdef"


@pytest.fixture
def emulator() -> Iterator[ProviderEmulator]:
    with ProviderEmulator() as running:
        yield running


def attune(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def openai_env(emulator: ProviderEmulator) -> dict[str, str]:
    return {"OPENAI_BASE_URL": emulator.openai_base_url}


def rows(home: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "telemetry.db") as conn:
        return conn.execute(
            "SELECT workflow, stage, provider, model, success, error_kind, status, attempt "
            "FROM calls ORDER BY id"
        ).fetchall()


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def envelope(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    document: dict[str, object] = json.loads(result.stdout)
    return document


def statuses(document: dict[str, object]) -> list[object]:
    return [a["status"] for a in document["attempts"]]  # type: ignore[attr-defined, index]


def test_openai_compatible_server_via_openai_base_url(
    emulator: ProviderEmulator, attune_home: Path
) -> None:
    result = attune(
        "ask", "hello", "-m", "gpt-5-mini", "-w", "docs", "-s", "draft", env=openai_env(emulator)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from gpt-5-mini on the attune emulator.\n"
    [request] = emulator.requests
    assert request.api == "openai" and request.stream
    assert "authorization" not in {k.lower() for k in request.headers}  # a local server: no key
    assert rows(attune_home) == [("docs", "draft", "openai", "gpt-5-mini", 1, None, 200, 1)]


def test_anthropic_style_server_via_anthropic_base_url(
    emulator: ProviderEmulator, attune_home: Path
) -> None:
    env = {"ANTHROPIC_BASE_URL": emulator.anthropic_base_url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    result = attune("ask", "hello", "-m", "claude-haiku-4-5", "--json", env=env)
    assert result.returncode == 0, result.stderr
    document = envelope(result)
    assert document["content"] == "Hello from claude-haiku-4-5 on the attune emulator."
    assert (document["provider"], document["tier"]) == ("anthropic", "cheap")
    assert document["cost_usd"] and document["input_tokens"] and document["output_tokens"]
    [request] = emulator.requests
    assert request.api == "anthropic"
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert rows(attune_home)[0][2:5] == ("anthropic", "claude-haiku-4-5", 1)


def test_local_model_from_config_toml(emulator: ProviderEmulator, attune_home: Path) -> None:
    write_config(
        attune_home,
        "[providers.local]\n"
        'api = "openai"\n'
        f'base_url = "{emulator.openai_base_url}"\n\n'
        '[models."llama3.1:8b"]\n'
        'provider = "local"\n'
        'tier = "cheap"\n',
    )
    result = attune("ask", "hi", "-m", "llama3.1:8b", "--json")
    assert result.returncode == 0, result.stderr
    assert envelope(result)["model"] == "llama3.1:8b"
    assert emulator.requests[0].model == "llama3.1:8b"
    assert rows(attune_home)[0][2:5] == ("local", "llama3.1:8b", 1)


@pytest.mark.parametrize(
    ("fault", "first_status", "first_kind"),
    [
        (Fail(500, retry_after_ms=10), 500, "server_error"),
        (Fail(529, retry_after_ms=10), 529, "overloaded"),
        (Drop(), None, "connection"),
        (StreamError("overloaded_error", after_chunks=0), 200, "overloaded"),
    ],
)
def test_transient_fault_then_recovery_is_retried_and_recorded(
    emulator: ProviderEmulator,
    attune_home: Path,
    fault: object,
    first_status: int | None,
    first_kind: str,
) -> None:
    # A fault without a wait of its own is retried after a short back-off (0.05 s, not 0.5 s).
    write_config(attune_home, "[executor]\nretry_delay_s = 0.05\n")
    emulator.set_behaviour("gpt-5-mini", Behaviour.script(fault))  # type: ignore[arg-type]
    result = attune("ask", "hi", "-m", "gpt-5-mini", "--json", env=openai_env(emulator))
    assert result.returncode == 0, result.stderr
    document = envelope(result)
    assert document["success"] is True and statuses(document) == [first_status, 200]
    assert emulator.requests_for("gpt-5-mini") == 2
    assert [(r[5], r[6], r[7]) for r in rows(attune_home)] == [
        (first_kind, first_status, 1),
        (None, 200, 2),
    ]


def test_rate_limit_waits_as_retry_after_says(emulator: ProviderEmulator) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour.script(Fail(429, retry_after="1")))
    result = attune(
        "ask", "hi", "-m", "gpt-5-mini", "--json", "--verbose", env=openai_env(emulator)
    )
    assert result.returncode == 0, result.stderr
    document = envelope(result)
    assert statuses(document) == [429, 200]
    assert document["latency_ms"] >= 1000  # type: ignore[operator]
    assert "retrying in 1 s" in result.stderr


def test_slow_model_times_out_then_answers(emulator: ProviderEmulator, attune_home: Path) -> None:
    write_config(attune_home, "[executor]\nread_timeout_s = 0.3\nretry_delay_s = 0.05\n")
    emulator.set_behaviour("gpt-5-mini", Behaviour.script(Reply(delay_s=5)))
    result = attune("ask", "hi", "-m", "gpt-5-mini", "--json", env=openai_env(emulator))
    assert result.returncode == 0, result.stderr
    attempts = envelope(result)["attempts"]
    assert [a["error_kind"] for a in attempts] == ["timeout", None]  # type: ignore[union-attr]


def test_malformed_json_is_not_retried_and_fails_a_named_model(
    emulator: ProviderEmulator,
) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour(then=Malformed()))
    result = attune("ask", "hi", "-m", "gpt-5-mini", env=openai_env(emulator))
    assert result.returncode == 1
    assert "malformed_response" in result.stderr
    assert emulator.requests_for("gpt-5-mini") == 1


def test_malformed_json_on_a_routed_call_falls_back(
    emulator: ProviderEmulator, attune_home: Path
) -> None:
    write_config(attune_home, "[routing]\nexplore = false\n")
    emulator.set_behaviour("gpt-5", Behaviour(then=Malformed()))
    result = attune("ask", "hi", "--tier", "capable", "--json", env=openai_env(emulator))
    assert result.returncode == 0, result.stderr
    document = envelope(result)
    # Down to the cheaper tier, never up to a dearer one.
    assert document["fallback_used"] is True and document["model"] == "gpt-5-mini"


def test_error_event_after_text_keeps_the_text_and_fails(emulator: ProviderEmulator) -> None:
    env = {"ANTHROPIC_BASE_URL": emulator.anthropic_base_url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    emulator.set_behaviour("claude-haiku-4-5", Behaviour(then=StreamError(after_chunks=2)))
    result = attune("ask", "hi", "-m", "claude-haiku-4-5", env=env)
    assert result.returncode == 1
    assert result.stdout == "Hello from \n"
    assert "broke off" in result.stderr and "incomplete" in result.stderr
    assert emulator.requests_for() == 1  # streamed text is never retried
    assert ANTHROPIC_KEY not in result.stdout + result.stderr


def test_failing_server_trips_the_breaker_then_one_probe_after_the_open_period(
    emulator: ProviderEmulator, attune_home: Path
) -> None:
    write_config(attune_home, "[executor]\nmax_retries = 0\n")
    emulator.set_behaviour("gpt-5-mini", Behaviour.failing(500))
    env = openai_env(emulator)
    # The first failure in a process of its own, the rest in this process; every call after
    # them is a new process that finds the circuit in the store.
    for run in (attune, *[attune_in_process] * 4):
        assert run("ask", "hi", "-m", "gpt-5-mini", env=env).returncode == 1
    assert emulator.requests_for("gpt-5-mini") == 5

    refused = attune("ask", "hi", "-m", "gpt-5-mini", env=env)
    assert refused.returncode == 1
    assert emulator.requests_for("gpt-5-mini") == 5  # rejected without touching the network
    assert "circuit open" in refused.stderr and "Retry in" in refused.stderr

    # The open period passes: move its end into the past rather than wait 30 s.
    with sqlite3.connect(attune_home / "telemetry.db") as conn:
        conn.execute("UPDATE breakers SET open_until = ?", (time.time() - 1,))
    emulator.set_behaviour("gpt-5-mini", Behaviour.healthy())
    probe = attune("ask", "hi", "-m", "gpt-5-mini", env=env)
    assert probe.returncode == 0, probe.stderr
    assert emulator.requests_for("gpt-5-mini") == 6  # exactly one probe
    after = attune("ask", "hi", "-m", "gpt-5-mini", env=env)
    assert after.returncode == 0 and emulator.requests_for("gpt-5-mini") == 7
