"""Decisions that keep their limits, as real processes against a real server on 127.0.0.1.

The history each test starts from is written by the ``telemetry record`` command run in this
process (the decisions under test, ``route`` and ``ask``, run as processes of their own).

The reproductions of issue 10: caps that leaked, an uncallable model chosen, an outage that
became a model's record, and a recovered provider the router never came back to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.reliability import (
    FAKE_ANTHROPIC_KEY,
    FAKE_OPENAI_KEY,
    Exchange,
    LoopbackServer,
    assert_clean_failure,
    attune,
    attune_in_process,
)

pytestmark = pytest.mark.e2e


def both_providers_at(url: str) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "OPENAI_BASE_URL": f"{url}/v1",
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
    }


def answers(exchange: Exchange) -> None:
    exchange.answer("fine")


def record(*args: str, env: dict[str, str] | None = None) -> None:
    """``attune telemetry record -w ci -s triage ARGS``, in this process."""
    from typer.testing import CliRunner

    from attune_cli.cli.app import app

    command = ["telemetry", "record", "-w", "ci", "-s", "triage", *args]
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 0, (result.stderr, result.exception)


def seed_history(env: dict[str, str] | None = None, calls: int = 12) -> None:
    """A cheap-tier history that a cap of zero rules out entirely."""
    for _ in range(calls):
        record(
            "-m",
            "claude-haiku-4-5",
            "--success",
            "--cost",
            "0.0009",
            "--latency-ms",
            "700",
            env=env,
        )
        record("-m", "gpt-5-mini", "--success", "--cost", "0.0004", "--latency-ms", "2500", env=env)


def test_a_zero_cost_cap_calls_no_one_and_says_so(attune_home: Path) -> None:
    with LoopbackServer(answers) as server:
        env = both_providers_at(server.url)
        seed_history(env, calls=2)
        best = attune("route", "best", "triage", "-w", "ci", "--max-cost", "0", env=env)
        stderr = assert_clean_failure(best, 1)
        assert best.stdout == ""
        assert "no model within the caps" in stderr
        explained = attune(
            "route", "best", "triage", "-w", "ci", "--max-cost", "0", "--json", env=env
        )
        assert explained.returncode == 1
        document = json.loads(explained.stdout)
        assert document["chosen"] is None
        for candidate in document["candidates"]:
            reasons = {r["reason"] for r in candidate["rejections"]}
            assert "over_cost_cap" in reasons, candidate["model"]

        asked = attune("ask", "hi", "-w", "ci", "-s", "triage", "--max-cost", "0", env=env)
        assert "no model within the caps" in assert_clean_failure(asked, 1)
        assert server.visits == []  # not one request reached the provider


def test_a_latency_cap_is_never_answered_with_a_model_over_it(attune_home: Path) -> None:
    env = {"ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY, "OPENAI_API_KEY": FAKE_OPENAI_KEY}
    seed_history(env)
    best = attune("route", "best", "triage", "-w", "ci", "--max-latency", "1000", "--json", env=env)
    assert best.returncode == 0, best.stderr
    document = json.loads(best.stdout)
    assert document["chosen"] == "claude-haiku-4-5"  # 700 ms; gpt-5-mini's p95 is 2,500
    tight = attune("route", "best", "triage", "-w", "ci", "--max-latency", "1", "--json", env=env)
    chosen = json.loads(tight.stdout)["chosen"]
    # Both models with history are slower than 1 ms: neither may be returned.
    assert chosen not in ("claude-haiku-4-5", "gpt-5-mini")


def test_only_a_model_this_machine_can_call_is_routed_to(attune_home: Path) -> None:
    with LoopbackServer(answers) as server:
        both = both_providers_at(server.url)
        for _ in range(12):
            record("-m", "claude-sonnet-4-5", "--success", "--latency-ms", "800", env=both)
            record("-m", "gpt-5", "--failure", "--latency-ms", "800", env=both)
            record("-m", "gpt-5", "--success", "--latency-ms", "800", env=both)
        only_openai = {"OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": FAKE_OPENAI_KEY}
        best = attune("route", "best", "analysis", "-w", "ci", env=only_openai)
        assert best.returncode == 0, best.stderr
        model = best.stdout.strip()
        assert model.startswith("gpt-"), model  # sonnet has the better record, but no key here
        asked = attune("ask", "hi", "-m", model, "-w", "ci", "-s", "analysis", env=only_openai)
        assert asked.returncode == 0, asked.stderr
        assert [v.model for v in server.visits] == [model]


def test_an_outage_is_not_remembered_as_a_bad_model(attune_home: Path) -> None:
    down = True

    def provider(exchange: Exchange) -> None:
        if down:
            exchange.error(503, "api_error", "service unavailable")
        else:
            exchange.answer("fine")

    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text(
        "[executor]\nmax_retries = 0\n[routing]\nexplore = false\n"
    )
    now = time.time()
    with LoopbackServer(provider) as server:
        env = {
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "ATTUNE_NOW": f"{now - 3 * 86_400:.3f}",
        }
        ask = ("ask", "hi", "-m", "gpt-5-mini", "-w", "ci", "-s", "triage")
        # The first ask of each phase is a process of its own; the rest build the same history
        # in this process (the same command, code and exit code, without the start-up).
        # Three days ago its provider had a short outage, then answered well.
        for run in (attune, attune_in_process, attune_in_process):
            assert_clean_failure(run(*ask, env=env), 1)
        down = False
        for run in (attune, *[attune_in_process] * 11):
            result = run(*ask, env=env)
            assert result.returncode == 0, result.stderr
        # An hour ago it went down again.
        down = True
        for run in (attune, *[attune_in_process] * 3):
            assert_clean_failure(run(*ask, env={**env, "ATTUNE_NOW": f"{now - 3600:.3f}"}), 1)

    def explain(at: float) -> dict[str, object]:
        result = attune(
            "route",
            "explain",
            "triage",
            "-w",
            "ci",
            "--json",
            env={**env, "ATTUNE_NOW": f"{at:.3f}"},
        )
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        return next(c for c in document["candidates"] if c["model"] == "gpt-5-mini")

    during = explain(now)
    failures = during["failures"]
    assert isinstance(failures, dict)
    assert failures["outage"] == 7 and failures["outage_counted"] == 4
    # Seven hours on, the outage is past the 6-hour memory: the record is the model's again.
    after = explain(now + 7 * 3600)
    assert after["success_rate"] == 1.0 and after["counted_calls"] == 12
    assert after["failures"] == {**failures, "outage_counted": 0}
    assert after["eligible"] is True
