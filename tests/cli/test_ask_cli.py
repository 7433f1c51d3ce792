"""`attune ask` through CliRunner against the provider emulator on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.emulator import Behaviour, Fail, ProviderEmulator

runner = CliRunner()


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


ENVELOPE_KEYS = {
    "content",
    "model",
    "provider",
    "tier",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "success",
    "error",
    "attempts",
    "fallback_used",
}


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderEmulator]:
    with ProviderEmulator(
        {"gpt-5": Behaviour.failing(500, retry_after_ms=1)}, api_key="sk-emulator-key-000111"
    ) as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-emulator-key-000111")
        yield running


def test_answer_streams_to_stdout_and_the_footer_goes_to_stderr(
    emulator: ProviderEmulator,
) -> None:
    result = runner.invoke(app, ["ask", "hello", "--model", "gpt-5-mini", "--verbose"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello from gpt-5-mini on the attune emulator.\n"
    assert "gpt-5-mini (openai, cheap)" in result.stderr
    assert "tokens" in result.stderr


def test_json_prints_only_the_envelope(emulator: ProviderEmulator) -> None:
    result = runner.invoke(app, ["ask", "hello", "-m", "gpt-5-mini", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= ENVELOPE_KEYS
    assert document["content"] == "Hello from gpt-5-mini on the attune emulator."
    assert document["success"] is True and document["fallback_used"] is False
    assert document["attempts"][0]["status"] == 200


def test_no_model_answering_exits_1_with_the_envelope_and_the_reason(
    emulator: ProviderEmulator,
) -> None:
    result = runner.invoke(app, ["ask", "hello", "-m", "gpt-5", "--json", "--verbose"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["success"] is False and document["error_kind"] == "server_error"
    assert [a["status"] for a in document["attempts"]] == [500, 500, 500]
    assert "Error: no model could answer; tried gpt-5 (openai): 3 attempts" in result.stderr
    assert "retrying" in result.stderr


def test_prompt_from_stdin(emulator: ProviderEmulator) -> None:
    result = runner.invoke(app, ["ask", "-", "-m", "gpt-5-mini", "--json"], input="from a pipe\n")
    assert result.exit_code == 0, result.stderr
    [request] = emulator.requests
    assert request.body["messages"][-1]["content"] == "from a pipe\n"


def test_system_and_max_tokens_reach_the_provider(emulator: ProviderEmulator) -> None:
    result = runner.invoke(
        app, ["ask", "hi", "-m", "gpt-5-mini", "--system", "be terse", "--max-tokens", "20"]
    )
    assert result.exit_code == 0, result.stderr
    body = emulator.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "be terse"}
    assert body["max_completion_tokens"] == 20


def test_a_refused_key_is_never_echoed(
    emulator: ProviderEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-9999888877776666")
    result = runner.invoke(app, ["ask", "hi", "-m", "gpt-5-mini", "--json"])
    assert result.exit_code == 1
    assert "sk-wrong-key-9999888877776666" not in result.stdout + result.stderr
    assert "HTTP 401 auth" in result.stderr
    assert "attune auth status" in result.stderr
    assert len(emulator.requests) == 1  # a caller error is not retried


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ask", "hi", "--model", "gpt-5", "--tier", "cheap"], "--tier"),
        (["ask", "hi", "--tier", "gold"], "--tier"),
        (["ask", "hi", "--max-tokens", "0"], "--max-tokens"),
        (["ask", "hi", "--max-cost", "-1"], "--max-cost"),
        (["ask", "   "], "PROMPT"),
        (["ask", "hi", "--workflow", ""], "--workflow"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(args: list[str], named: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert named in result.stderr


def test_no_provider_configured_exits_1_saying_how_to_set_one_up() -> None:
    result = runner.invoke(app, ["ask", "hello"])
    assert result.exit_code == 1
    assert "Error: no provider is configured" in result.stderr
    assert "attune auth login" in result.stderr
    assert result.stdout == ""


def test_routed_call_falls_back_to_a_cheaper_tier_not_a_dearer_one(
    emulator: ProviderEmulator,
) -> None:
    emulator.set_behaviour("gpt-5", Behaviour([Fail(503, retry_after_ms=1)] * 3))
    result = runner.invoke(app, ["ask", "hi", "--tier", "capable", "--json", "--verbose"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["fallback_used"] is True
    # capable gpt-5 (failing; anthropic unconfigured) → cheap gpt-5-mini; never premium.
    assert [a["model"] for a in document["attempts"]] == ["gpt-5"] * 3 + ["gpt-5-mini"]
    assert (document["model"], document["tier"]) == ("gpt-5-mini", "cheap")
    assert "falling back to gpt-5-mini (openai)" in result.stderr
    assert emulator.requests_for("gpt-5-pro") == 0


def test_a_dearer_tier_only_with_escalate(emulator: ProviderEmulator, attune_home: Path) -> None:
    write_config(attune_home, "[executor]\nescalate = true\nmax_attempts = 10\n")
    emulator.set_behaviour("gpt-5-mini", Behaviour([Fail(503, retry_after_ms=1)] * 3))
    result = runner.invoke(app, ["ask", "hi", "--tier", "cheap", "--json", "--verbose"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    # cheap (anthropic unconfigured) → capable gpt-5 (failing) → premium gpt-5-pro.
    assert [a["model"] for a in document["attempts"]] == ["gpt-5-mini"] * 3 + ["gpt-5"] * 3 + [
        "gpt-5-pro"
    ]
    assert (document["model"], document["tier"]) == ("gpt-5-pro", "premium")
    assert "falling back to gpt-5-pro (openai)" in result.stderr


def test_without_escalate_a_failing_cheapest_tier_is_the_end(emulator: ProviderEmulator) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour([Fail(503, retry_after_ms=1)] * 3))
    result = runner.invoke(app, ["ask", "hi", "--tier", "cheap", "--json"])
    assert result.exit_code == 1
    assert emulator.requests_for("gpt-5") == 0 and emulator.requests_for("gpt-5-pro") == 0
    assert "gpt-5-mini (openai): 3 attempts, last HTTP 503" in result.stderr


@pytest.mark.parametrize(
    ("setting", "shown"),
    [("max_attempts = 0", "executor.max_attempts"), ('escalate = "yes"', "executor.escalate")],
)
def test_a_bad_executor_setting_exits_2_naming_the_key(
    emulator: ProviderEmulator, attune_home: Path, setting: str, shown: str
) -> None:
    write_config(attune_home, f"[executor]\n{setting}\n")
    result = runner.invoke(app, ["ask", "hi", "--model", "gpt-5-mini"])
    assert result.exit_code == 2
    assert shown in result.stderr
    assert emulator.requests_for() == 0


def test_help_teaches_with_examples() -> None:
    result = runner.invoke(app, ["ask", "--help"])
    assert result.exit_code == 0
    assert "attune ask" in result.stdout and "--max-cost" in result.stdout
