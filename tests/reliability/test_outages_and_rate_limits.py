"""`attune ask` as a real process: a dead server, a rate-limiting one and a failing one.

What a user notices: how many requests reach (or try to reach) the provider, whether a call
escalates to a dearer tier, and which circuits `attune route breakers` then shows.
"""

from __future__ import annotations

import json
import socket
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

from attune_cli.core.executor import ResilientExecutor
from attune_cli.core.registry import BUILTIN_MODELS, TIERS

pytestmark = pytest.mark.e2e

TIER_OF = {m.id: TIERS.index(m.tier) for m in BUILTIN_MODELS}


def both_providers_at(url: str) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "OPENAI_BASE_URL": f"{url}/v1",
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
    }


def breakers() -> dict[str, dict[str, object]]:
    result = attune("route", "breakers", "--json")
    assert result.returncode == 0, result.stderr
    return {item["key"]: item for item in json.loads(result.stdout)}


def sent(document: dict[str, object]) -> list[dict[str, object]]:
    attempts: list[dict[str, object]] = document["attempts"]  # type: ignore[assignment]
    return [a for a in attempts if a["error_kind"] != "breaker_open"]


def test_a_dead_server_costs_one_attempt_per_endpoint_and_opens_their_circuits(
    attune_home: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = both_providers_at(url)
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nescalate = false\n")

    began = time.monotonic()
    result = attune("ask", "hi", "-w", "review", "-s", "triage", "--json", "--verbose", env=env)
    elapsed_s = time.monotonic() - began

    stderr = assert_clean_failure(result, 1)
    document = json.loads(result.stdout)
    tried = sent(document)
    # Two endpoints (the Anthropic URL and the OpenAI one): at most one attempt each.
    assert 1 <= len(tried) <= 2, document["attempts"]
    first_tier = TIER_OF[str(tried[0]["model"])]
    assert all(TIER_OF[str(a["model"])] <= first_tier for a in document["attempts"])
    assert elapsed_s < 10
    assert "cannot be reached" in stderr
    shown = json.loads(attune("telemetry", "show", "--json").stdout)
    assert len(shown) == len(tried)

    circuits = breakers()
    endpoints = {k: v for k, v in circuits.items() if v["kind"] == "endpoint"}
    assert set(endpoints) <= {f"endpoint:{url}", f"endpoint:{url}/v1"}
    assert len(endpoints) == len(tried)
    assert {v["state"] for v in endpoints.values()} == {"open"}
    # The models are not to blame for a server that is not there: nothing is held against them.
    assert [k for k, v in circuits.items() if v["kind"] == "model"] == []

    # The next call sends nothing at all, and says why.
    again = attune("ask", "hi", "-w", "review", "-s", "triage", "--json", env=env)
    assert_clean_failure(again, 1)
    assert sent(json.loads(again.stdout)) == []
    assert "circuit open" in again.stderr

    # The key shown is the key reset takes.
    key = next(iter(endpoints))
    reset = attune("route", "breakers", "reset", key)
    assert reset.returncode == 0, reset.stderr
    assert breakers()[key]["state"] == "closed"


@pytest.mark.parametrize("retry_after_ms", [None, "50"], ids=["no-wait", "wait-50ms"])
def test_rate_limits_stay_within_the_attempt_budget_and_open_no_circuit(
    attune_home: Path, retry_after_ms: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def limited(exchange: Exchange) -> None:
        hints = {"retry_after_ms": retry_after_ms} if retry_after_ms else {}
        # Anthropic's 429 with the body type of a server error: the status decides.
        kind = "api_error" if exchange.api == "anthropic" else "rate_limit_exceeded"
        exchange.error(429, kind, "Too many requests", **hints)

    # A short back-off where the server names no wait (0.05 s, doubled per retry), which the
    # process of its own sleeps for real; the asks run in this process note their waits
    # instead of sleeping them, and the waits are checked below.
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nretry_delay_s = 0.05\n")
    waits: list[float] = []
    monkeypatch.setitem(ResilientExecutor.__init__.__kwdefaults__, "sleep", waits.append)
    with LoopbackServer(limited) as server:
        env = both_providers_at(server.url)
        # The first ask in a process of its own, the next two in this process; the breakers
        # they leave are read by a new process below.
        for run in (attune, attune_in_process, attune_in_process):
            result = run("ask", "hi", "-w", "review", "-s", "triage", "--json", env=env)
            assert_clean_failure(result, 1)
            document = json.loads(result.stdout)
            assert len(sent(document)) <= 6  # [executor] max_attempts, by default
        visits = server.visits
    assert len(visits) <= 3 * 6
    first_tier = TIER_OF[visits[0].model]
    assert all(TIER_OF[v.model] <= first_tier for v in visits)
    assert "HTTP 429" in result.stderr
    assert {v["state"] for v in breakers().values()} <= {"closed"}
    assert waits, "the in-process asks never waited"
    if retry_after_ms:
        assert waits == [pytest.approx(int(retry_after_ms) / 1000)] * len(waits)
    else:
        # The client's own back-off: 0.05 s, then 0.1 s, less up to a quarter of jitter.
        assert all(0.0375 <= w <= 0.1 for w in waits), waits


def test_max_attempts_from_config_caps_what_the_server_receives(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_attempts = 2\n")

    def limited(exchange: Exchange) -> None:
        exchange.error(429, "rate_limit_error", "slow down", retry_after_ms="10")

    with LoopbackServer(limited) as server:
        result = attune("ask", "hi", "--tier", "capable", env=both_providers_at(server.url))
        assert_clean_failure(result, 1)
        assert len(server.visits) == 2
    assert "max_attempts = 2" in result.stderr


def test_a_failing_server_still_opens_the_models_circuit_not_the_endpoints(
    attune_home: Path,
) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_retries = 0\n")

    def down(exchange: Exchange) -> None:
        exchange.error(503, "server_error", "down")

    with LoopbackServer(down) as server:
        env = {"OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": FAKE_OPENAI_KEY}
        # The first failure in a process of its own, the rest in this process; the refusal
        # below is a process again, reading the circuit the others left in the store.
        for run in (attune, *[attune_in_process] * 4):
            assert_clean_failure(run("ask", "hi", "-m", "gpt-5", env=env), 1)
        refused = attune("ask", "hi", "-m", "gpt-5", env=env)
        received = len(server.visits)
    assert received == 5  # the sixth call was refused before the network
    assert "circuit open" in assert_clean_failure(refused, 1)
    circuits = breakers()
    assert circuits["openai/gpt-5"]["state"] == "open"
    # A 503 is an answer: the endpoint was reachable, so its circuit never opened.
    assert not [
        k for k, v in circuits.items() if v["kind"] == "endpoint" and v["state"] != "closed"
    ]
