"""LLMResponse: the `ask --json` envelope keeps DESIGN's keys whichever provider answered."""

from __future__ import annotations

import json

from attune_cli.core.response import BREAKER_OPEN, Attempt, LLMResponse

DESIGN_KEYS = {
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
ATTEMPT_KEYS = {"model", "provider", "status", "error_kind", "latency_ms"}


def envelope(**changes: object) -> LLMResponse:
    values: dict[str, object] = {
        "content": "hello",
        "model": "gpt-5-mini",
        "provider": "openai",
        "tier": "cheap",
        "input_tokens": 12,
        "output_tokens": 40,
        "cost_usd": 8.3e-05,
        "latency_ms": 412.04,
        "success": True,
        "attempts": (
            Attempt("claude-haiku-4-5", "anthropic", None, BREAKER_OPEN, 0.0),
            Attempt("gpt-5-mini", "openai", 200, None, 410.26),
        ),
        "fallback_used": True,
    }
    values.update(changes)
    return LLMResponse(**values)  # type: ignore[arg-type]


def test_json_has_every_design_key_and_round_trips() -> None:
    document = json.loads(json.dumps(envelope().to_dict()))
    assert set(document) >= DESIGN_KEYS
    assert document["fallback_used"] is True
    assert document["latency_ms"] == 412.0
    assert [set(a) for a in document["attempts"]] == [ATTEMPT_KEYS, ATTEMPT_KEYS]
    assert document["attempts"][1] == {
        "model": "gpt-5-mini",
        "provider": "openai",
        "status": 200,
        "error_kind": None,
        "latency_ms": 410.3,
    }


def test_failed_envelope_carries_error_kind_and_retry_time() -> None:
    failed = envelope(
        success=False,
        error="no model could answer",
        error_kind="server_error",
        retry_after_s=29.96,
        fallback_used=False,
    ).to_dict()
    assert failed["success"] is False
    assert failed["error"] == "no model could answer"
    assert failed["error_kind"] == "server_error"
    assert failed["retry_after_s"] == 30.0


def test_breaker_refusal_is_an_attempt_that_was_not_sent() -> None:
    refused, answered = envelope().attempts
    assert not refused.sent and not refused.success
    assert answered.sent and answered.success
