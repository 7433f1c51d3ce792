"""OpenAI-compatible chat completions: ``POST {base}/chat/completions``.

The base URL includes ``/v1`` (``https://api.openai.com/v1``, ``http://localhost:11434/v1`` for
Ollama), so the same adapter serves OpenAI, Ollama, vLLM, LM Studio, OpenRouter and proxies.
Authentication is a Bearer token, sent only when a key is configured (local servers need none).
Usage is ``usage.prompt_tokens`` / ``usage.completion_tokens``; streamed answers ask for a final
usage chunk (``stream_options.include_usage``) and end with ``data: [DONE]``.
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

STREAM_ERROR_KINDS = {
    "server_error": "server_error",
    "api_error": "server_error",
    "internal_error": "server_error",
    "rate_limit_exceeded": "rate_limit",
    "rate_limit_error": "rate_limit",
    "overloaded": "overloaded",
    "overloaded_error": "overloaded",
    "service_unavailable": "overloaded",
    "timeout": "timeout",
    "invalid_request_error": "bad_request",
    "context_length_exceeded": "too_large",
    "authentication_error": "auth",
    "invalid_api_key": "auth",
    "insufficient_quota": "billing",
}
"""Error ``type`` / ``code`` values seen in a stream after HTTP 200, and their failure kind."""

# OpenAI's reasoning models refuse ``max_tokens``; compatible servers know only ``max_tokens``.
_COMPLETION_TOKENS_PREFIXES = ("gpt-5", "o1", "o3", "o4")


class OpenAIAdapter(ProviderAdapter):
    """OpenAI-compatible chat-completions adapter."""

    api = "openai"

    def url(self) -> str:
        return f"{self.endpoint.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }
        if self.endpoint.api_key:
            headers["authorization"] = f"Bearer {self.endpoint.api_key}"
        return headers

    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += request.turns()
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        if request.model.startswith(_COMPLETION_TOKENS_PREFIXES):
            body["max_completion_tokens"] = request.max_tokens
        else:
            body["max_tokens"] = request.max_tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def parse_message(self, data: Any) -> Completion:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.failure("the answer has no choices", kind="malformed_response", status=200)
        message = choices[0].get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return Completion(
            content=content if isinstance(content, str) else "",
            input_tokens=as_token_count(usage.get("prompt_tokens")),
            output_tokens=as_token_count(usage.get("completion_tokens")),
            stop_reason=choices[0].get("finish_reason"),
        )

    def stream_parser(self) -> StreamParser:
        return _OpenAIStream(self)

    def error_kind_and_message(self, data: Any, status: int) -> tuple[str, str]:
        error_type, message = error_text(data)
        if status != 200:
            # OpenAI's types are coarse (a 404 is an invalid_request_error): trust the status.
            kind = kind_for_status(status)
        else:
            error = data.get("error") if isinstance(data, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            kind = (
                STREAM_ERROR_KINDS.get(str(code or ""))
                or STREAM_ERROR_KINDS.get(error_type or "")
                or "server_error"
            )
        return kind, f"{error_type}: {message}" if error_type else message


class _OpenAIStream(StreamParser):
    def __init__(self, adapter: OpenAIAdapter) -> None:
        self.adapter = adapter
        self.parts: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None
        self.done = False

    def feed(self, event: str | None, data: str) -> str | None:
        if data.strip() == "[DONE]":
            self.done = True
            return None
        payload = self.adapter.stream_payload(data, "chunk")
        if "error" in payload or event == "error":
            raise self.adapter.stream_error(payload)
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = as_token_count(usage.get("prompt_tokens"))
            self.output_tokens = as_token_count(usage.get("completion_tokens"))
        choices = payload.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.stop_reason = choice["finish_reason"]
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str) and text:
            self.parts.append(text)
            return text
        return None

    def finish(self) -> Completion:
        # Some compatible servers omit [DONE]; a finish_reason is as good an end marker.
        if not self.done and self.stop_reason is None:
            raise self.adapter.failure(
                "the stream ended before [DONE] (connection dropped mid-answer)",
                kind="connection",
                status=200,
            )
        return Completion(
            content="".join(self.parts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            stop_reason=self.stop_reason,
        )
