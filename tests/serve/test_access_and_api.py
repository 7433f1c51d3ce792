"""The gateway's access rule (in-process, with a client address from elsewhere) and Attune."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from attune_cli import Attune
from attune_cli.core.errors import UsageError
from attune_cli.core.workspace import Workspace
from attune_cli.emulator import ProviderEmulator
from attune_cli.serve.access import AccessPolicy, load_or_create_token
from attune_cli.serve.app import create_app

BAD_JSON = {"content": b"{", "headers": {"content-type": "application/json"}}


def client(access: AccessPolicy, host: str) -> TestClient:
    app = create_app(Workspace.load(), environ={}, access=access)
    return TestClient(app, client=(host, 50000))


def test_a_client_off_this_machine_is_refused_unless_it_sends_the_token(attune_home: Path) -> None:
    elsewhere = "203.0.113.7"
    refused = client(AccessPolicy(), elsewhere).post("/v1/messages", **BAD_JSON)  # type: ignore[arg-type]
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert "--require-token" in refused.json()["error"]["message"]

    token = load_or_create_token(attune_home)
    guarded = client(AccessPolicy(token), elsewhere)
    wrong = guarded.post(
        "/v1/chat/completions", headers={"authorization": "Bearer nope"}, content=b"{"
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    # With the token the request gets through to parsing (and fails there, as bad JSON).
    right = guarded.post(
        "/v1/chat/completions", headers={"authorization": f"Bearer {token}"}, content=b"{"
    )
    assert right.status_code == 400
    by_api_key = guarded.post("/v1/messages", headers={"x-api-key": token}, content=b"{")
    assert by_api_key.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_clients_are_served_without_a_token(attune_home: Path, host: str) -> None:
    response = client(AccessPolicy("a-token"), host).post("/v1/messages", content=b"{")
    assert response.status_code == 400  # past the access check, refused as bad JSON


def test_attune_records_routes_and_asks_like_the_cli(attune_home: Path) -> None:
    with ProviderEmulator() as emulator:
        environ = {"OPENAI_BASE_URL": emulator.openai_base_url, "OPENAI_API_KEY": "sk-x"}
        attune = Attune(attune_home, environ=environ)
        for _ in range(5):
            attune.record(
                workflow="ci", stage="triage", model="gpt-5-mini", success=True, latency_ms=100
            )
        decision = attune.route("triage", workflow="ci")
        assert decision.chosen == "gpt-5-mini"
        [seen] = [c for c in decision.candidates if c.model == "gpt-5-mini"]
        assert seen.calls == 5  # the recorded history is what routing read

        pieces: list[str] = []
        response = attune.ask("hi", workflow="ci", stage="triage", on_text=pieces.append)
        assert response.success and response.model == "gpt-5-mini"
        assert (
            "".join(pieces) == response.content == "Hello from gpt-5-mini on the attune emulator."
        )
        assert emulator.requests_for("gpt-5-mini") == 1
        with pytest.raises(UsageError):
            attune.record(workflow="ci\x1b[2J", stage="triage", model="m", success=True)
