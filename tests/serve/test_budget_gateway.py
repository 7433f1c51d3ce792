"""The gateway under a budget: a refused call is a 402 the SDKs do not retry."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.core.workspace import Workspace
from attune_cli.emulator import ProviderEmulator
from attune_cli.serve.access import AccessPolicy
from attune_cli.serve.app import create_app


def test_a_spent_budget_refuses_with_402_and_calls_no_one(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text(
        '[budgets]\ntimezone = "UTC"\n\n[budgets.code-review]\ndaily_usd = 1\n'
    )
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record(CallRecord("code-review", "analysis", "gpt-5", True, cost_usd=1.0))
    with ProviderEmulator() as emulator:
        environ = {"OPENAI_BASE_URL": emulator.openai_base_url, "OPENAI_API_KEY": "sk-x"}
        app = create_app(Workspace.load(), environ=environ, access=AccessPolicy())
        response = TestClient(app, client=("127.0.0.1", 50000)).post(
            "/v1/chat/completions",
            json={
                "model": "attune/code-review/analysis",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert response.status_code == 402, response.text
        assert (
            "budget 'code-review' (daily $1.00): $1.00 spent" in response.json()["error"]["message"]
        )
        assert emulator.requests_for() == 0
