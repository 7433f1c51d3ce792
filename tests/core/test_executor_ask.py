"""`attune ask` in core: the router's pick reconciled with configured providers, then the call."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from helpers.executor_fakes import ScriptedProvider, answer, error

from attune_cli.core.ask import AskOptions, ask
from attune_cli.core.errors import OperationError
from attune_cli.core.workspace import Workspace

KEY = "sk-test-0123456789abcdefSECRET"


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
    assert notes[0].startswith("routed to gpt-5: No history")
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
