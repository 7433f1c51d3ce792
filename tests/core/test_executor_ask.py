"""`attune ask` in core: the router's pick reconciled with configured providers, then the call."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from executor_fakes import FakeClock, ScriptedProvider, answer, error, make_executor

from attune_cli.core.ask import AskOptions, ask, choose_model
from attune_cli.core.errors import OperationError
from attune_cli.core.routing import Candidate, RoutingDecision
from attune_cli.core.workspace import Workspace

KEY = "sk-test-0123456789abcdefSECRET"


def decision(chosen: str, provider: str, tier: str, *candidates: Candidate) -> RoutingDecision:
    return RoutingDecision(
        workflow="w",
        stage="s",
        chosen=chosen,
        tier=tier,
        provider=provider,
        reason="the best score",
        fallback=False,
        constraints={},
        candidates=list(candidates),
        default_tier="cheap",
    )


@pytest.fixture
def executor() -> object:
    return make_executor(ScriptedProvider(), FakeClock())


def test_the_routers_pick_goes_first_when_its_provider_is_configured(executor: object) -> None:
    model, note = choose_model(
        decision("claude-haiku-4-5", "anthropic", "cheap"), {"anthropic"}, executor, None
    )
    assert model == "claude-haiku-4-5"
    assert note == "routed to claude-haiku-4-5: the best score"


def test_an_unconfigured_pick_gives_way_to_the_best_configured_candidate(executor: object) -> None:
    pick = decision(
        "claude-haiku-4-5",
        "anthropic",
        "cheap",
        Candidate("claude-haiku-4-5", "anthropic", "cheap", eligible=True),
        Candidate("gpt-5", "openai", "capable", eligible=False),
        Candidate("gpt-5-mini", "openai", "cheap", eligible=True),
    )
    model, note = choose_model(pick, {"openai"}, executor, None)
    assert model == "gpt-5-mini"
    assert "anthropic, not configured" in note


def test_without_eligible_candidates_the_tiers_first_configured_model(executor: object) -> None:
    model, _ = choose_model(
        decision("claude-haiku-4-5", "anthropic", "cheap"), {"openai"}, executor, None
    )
    assert model == "gpt-5-mini"


def test_tier_restricts_the_choice(executor: object) -> None:
    model, note = choose_model(
        decision("claude-haiku-4-5", "anthropic", "cheap"), {"anthropic"}, executor, "premium"
    )
    assert model == "claude-opus-4-5"
    assert "not of the premium tier" in note


def workspace_with(config: str = "") -> Workspace:
    workspace = Workspace.load()
    workspace.paths.config_dir.mkdir(parents=True, exist_ok=True)
    workspace.paths.config_file.write_text(config, encoding="utf-8")
    return Workspace.load()


def client_for(provider: ScriptedProvider) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(provider.handler))


def test_ask_routes_calls_and_records_every_attempt(attune_home: Path) -> None:
    workspace = workspace_with("[routing]\nexplore = false\n")
    provider = ScriptedProvider()
    provider.script("gpt-5", error(500), answer)
    notes: list[str] = []
    pieces: list[str] = []
    response = ask(
        workspace,
        AskOptions("hi", workflow="review", stage="analysis"),
        on_text=pieces.append,
        on_notice=notes.append,
        environ={"OPENAI_API_KEY": KEY},
        client=client_for(provider),
    )
    # analysis is a capable stage; anthropic has no key, so the capable OpenAI model goes first.
    assert provider.models == ["gpt-5", "gpt-5"]
    assert notes[0].startswith("using gpt-5")
    assert response.success and "".join(pieces) == response.content
    rows = sqlite3.connect(workspace.paths.telemetry_db).execute(
        "SELECT workflow, stage, model, success, status FROM calls ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("review", "analysis", m, int(ok), s)
        for m, ok, s in zip(
            provider.models,
            [a.success for a in response.attempts],
            [a.status for a in response.attempts],
            strict=True,
        )
    ]


def test_a_named_model_is_not_replaced_by_fallback(attune_home: Path) -> None:
    provider = ScriptedProvider(gpt_5_mini=[error(400)])
    response = ask(
        workspace_with(),
        AskOptions("hi", model="gpt-5-mini"),
        environ={"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY},
        client=client_for(provider),
    )
    assert not response.success and provider.models == ["gpt-5-mini"]


def test_nothing_configured_says_how_to_configure(attune_home: Path) -> None:
    with pytest.raises(OperationError) as caught:
        ask(workspace_with(), AskOptions("hi"), environ={})
    assert caught.value.message == "no provider is configured"
    assert "OPENAI_BASE_URL" in (caught.value.hint or "")
