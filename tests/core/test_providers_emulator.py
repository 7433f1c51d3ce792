"""The provider emulator the demo and e2e tests rely on: scripts, specs, both APIs' formats."""

from __future__ import annotations

import httpx
import pytest

from attune_cli.emulator import (
    Behaviour,
    Drop,
    Fail,
    ProviderEmulator,
    Reply,
    behaviour_from_spec,
)


def test_a_script_plays_in_order_then_repeats_its_tail() -> None:
    behaviour = Behaviour.script(Fail(500), Drop(), then=Reply("ok"))
    assert [behaviour.next_step() for _ in range(4)] == [
        Fail(500),
        Drop(),
        Reply("ok"),
        Reply("ok"),
    ]


def test_bursts_cycle_forever() -> None:
    behaviour = Behaviour.bursts(ok=2, failing=1, status=529)
    steps = [behaviour.next_step() for _ in range(6)]
    assert steps == [Reply(), Reply(), Fail(529)] * 2


@pytest.mark.parametrize(
    ("spec", "first"),
    [
        ("healthy", Reply()),
        ("slow:2.5", Reply(delay_s=2.5)),
        ("529", Fail(529)),
        ("429:7", Fail(429, retry_after="7")),
        ("drop", Drop()),
    ],
)
def test_specs(spec: str, first: object) -> None:
    assert behaviour_from_spec(spec).next_step() == first


def test_unknown_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown behaviour"):
        behaviour_from_spec("sometimes")


def test_errors_come_in_each_apis_format_with_retry_headers() -> None:
    fail = Behaviour.failing(529, retry_after="3", retry_after_ms=2500, should_retry=True)
    with ProviderEmulator({"m": fail}) as emulator, httpx.Client() as client:
        anthropic = client.post(f"{emulator.anthropic_base_url}/v1/messages", json={"model": "m"})
        openai = client.post(f"{emulator.openai_base_url}/chat/completions", json={"model": "m"})
    assert anthropic.status_code == openai.status_code == 529
    assert anthropic.json()["error"]["type"] == "overloaded_error"
    assert anthropic.json()["type"] == "error"
    assert "message" in openai.json()["error"]
    assert anthropic.headers["retry-after"] == "3"
    assert anthropic.headers["retry-after-ms"] == "2500"
    assert anthropic.headers["x-should-retry"] == "true"


def test_a_required_key_is_checked_per_api() -> None:
    with ProviderEmulator(api_key="sk-right") as emulator, httpx.Client() as client:
        wrong = client.post(
            f"{emulator.anthropic_base_url}/v1/messages",
            json={"model": "m"},
            headers={"x-api-key": "sk-wrong"},
        )
        right = client.post(
            f"{emulator.openai_base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer sk-right"},
        )
        unknown = client.post(f"{emulator.url}/v1/embeddings", json={})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert right.status_code == 200 and right.json()["choices"][0]["message"]["content"]
    assert unknown.status_code == 404
    assert emulator.requests_for("m") == 2
