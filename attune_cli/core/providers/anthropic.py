"""The Anthropic Messages API: ``POST {base}/v1/messages``.

Authentication is the ``x-api-key`` header with an ``anthropic-version``. The answer is a list
of content blocks, of which attune keeps the text; usage is ``input_tokens`` / ``output_tokens``.
Streamed answers are server-sent events (``message_start``, ``content_block_delta`` …
``message_stop``); an ``error`` event can arrive after HTTP 200 and is classified by its type.
"""

from __future__ import annotations

from typing import Any

from attune_cli.core.providers.base import (
    USER_AGENT,
    ChatRequest,
    Completion,
    ProviderAdapter,
    StreamParser,
    as_token_count,
    error_text,
    kind_for_status,
)

ANTHROPIC_VERSION = "2023-06-01"

ERROR_KINDS = {
    "invalid_request_error": "bad_request",
    "authentication_error": "auth",
    "billing_error": "billing",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "too_large",
    "rate_limit_error": "rate_limit",
    "api_error": "server_error",
    "timeout_error": "timeout",
    "overloaded_error": "overloaded",
}
"""Anthropic's error ``type`` values and the failure kind each means."""


class AnthropicAdapter(ProviderAdapter):
    """Anthropic Messages API adapter."""

    api = "anthropic"

    def url(self) -> str:
        return f"{self.endpoint.base_url}/v1/messages"

    def headers(self) -> dict[str, str]:
        headers = {
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        return headers

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": request.turns(),
        }
        if request.system:
            body["system"] = request.system
        if stream:
            body["stream"] = True
        return body

    def parse_message(self, data: Any) -> Completion:
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise self.failure(
                "the answer has no content blocks", kind="malformed_response", status=200
            )
        text = "".join(
            block["text"]
            for block in data["content"]
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            content=text,
            input_tokens=as_token_count(usage.get("input_tokens")),
            output_tokens=as_token_count(usage.get("output_tokens")),
            stop_reason=data.get("stop_reason"),
        )

    def stream_parser(self) -> StreamParser:
        return _AnthropicStream(self)

    def error_kind_and_message(self, data: Any, status: int) -> tuple[str, str]:
        error_type, message = error_text(data)
        kind = ERROR_KINDS.get(error_type or "")
        if kind is None:
            kind = kind_for_status(status) if status != 200 else "server_error"
        return kind, f"{error_type}: {message}" if error_type else message


class _AnthropicStream(StreamParser):
    def __init__(self, adapter: AnthropicAdapter) -> None:
        self.adapter = adapter
        self.parts: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: str | None, data: str) -> str | None:
        payload = self.adapter.stream_payload(data, "event")
        kind = payload.get("type") or event
        if kind == "error":
            raise self.adapter.stream_error(payload)
        if kind == "content_block_delta":
            delta = _table(payload.get("delta"))
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.parts.append(delta["text"])
                return str(delta["text"])
        elif kind == "message_start":
            usage = _table(_table(payload.get("message")).get("usage"))
            self.input_tokens = as_token_count(usage.get("input_tokens"))
            self.output_tokens = as_token_count(usage.get("output_tokens"))
        elif kind == "message_delta":
            usage = _table(payload.get("usage"))
            # The final count is cumulative and replaces message_start's placeholder.
            if as_token_count(usage.get("output_tokens")) is not None:
                self.output_tokens = usage["output_tokens"]
            if as_token_count(usage.get("input_tokens")) is not None:
                self.input_tokens = usage["input_tokens"]
            self.stop_reason = _table(payload.get("delta")).get("stop_reason") or self.stop_reason
        elif kind == "message_stop":
            self.stopped = True
        return None

    def finish(self) -> Completion:
        if not self.stopped:
            raise self.adapter.failure(
                "the stream ended before message_stop (connection dropped mid-answer)",
                kind="connection",
                status=200,
            )
        return Completion(
            content="".join(self.parts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            stop_reason=self.stop_reason,
        )


def _table(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a server may send anything)."""
    return value if isinstance(value, dict) else {}
