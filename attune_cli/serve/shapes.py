"""The two APIs' shapes: requests in, answers, stream events and errors out.

The gateway speaks OpenAI chat completions (``POST /v1/chat/completions``) and the Anthropic
Messages API (``POST /v1/messages``). This module knows only their JSON: ``parse_request``
turns a body into a ``GatewayRequest`` (or a ``BadRequest`` in the caller's shape), and a
``Shape`` renders an ``LLMResponse``, a stream's events, and any failure the way the caller's
SDK expects them, so its own error classes and retry logic keep working.

Only text is carried: system prompts, user and assistant turns, ``max_tokens`` and ``stream``.
Other fields (temperature, tools, images …) are not forwarded; a message holding anything but
text is refused with a 400 rather than silently cut.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from attune_cli.core.providers.base import Message
from attune_cli.core.response import BREAKER_OPEN, LLMResponse

ALIAS_PREFIX = "attune/"
"""A model named ``attune/WORKFLOW/STAGE`` (or ``attune/STAGE``) is routed, not called as is."""

DEFAULT_MAX_TOKENS = 1024


class Api(StrEnum):
    """Which API a request came in through."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass(frozen=True)
class GatewayRequest:
    """One call as the gateway understood it, whichever API it came through.

    Attributes:
        api: the caller's API.
        model: the ``model`` field as sent (a model id or an ``attune/…`` alias).
        messages: the conversation, system turns removed.
        system: the system prompt, None when there is none.
        max_tokens: the most output tokens.
        stream: whether the caller asked for server-sent events.
        include_usage: (OpenAI) the caller asked for a final usage chunk.
    """

    api: Api
    model: str
    messages: tuple[Message, ...]
    system: str | None
    max_tokens: int
    stream: bool
    include_usage: bool = False

    @property
    def prompt(self) -> str:
        """Every turn's text, for the executor's worst-case cost estimate."""
        return "\n".join(m.content for m in self.messages)


@dataclass(frozen=True)
class Route:
    """What the ``model`` field asks for: a model by id, or routing for a stage.

    Attributes:
        model: the model id to call; None to route.
        workflow: the workflow named by the alias, None when it named none.
        stage: the stage named by the alias, None when it named none.
    """

    model: str | None
    workflow: str | None = None
    stage: str | None = None


def parse_route(model: str) -> Route:
    """``attune/WORKFLOW/STAGE`` and ``attune/STAGE`` route; anything else is a model id.

    Raises:
        BadRequest: an alias with an empty or extra part.
    """
    if not model.startswith(ALIAS_PREFIX):
        return Route(model)
    parts = model[len(ALIAS_PREFIX) :].split("/")
    if len(parts) == 1 and parts[0]:
        return Route(None, None, parts[0])
    if len(parts) == 2 and all(parts):
        return Route(None, parts[0], parts[1])
    raise BadRequest(
        f"model {model[:80]!r}: a routing alias is attune/WORKFLOW/STAGE or attune/STAGE"
    )


class BadRequest(Exception):
    """A request the gateway refuses before anything is called (never a model's failure).

    Attributes:
        status: the HTTP status (400, 413, 404 …).
        message: what is wrong, for the caller.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_request(api: Api, raw: bytes) -> GatewayRequest:
    """The call a request body asks for.

    Args:
        api: the API the body came through.
        raw: the body.

    Raises:
        BadRequest: not JSON, not an object, or not the API's request shape.
    """
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model: a model id or attune/WORKFLOW/STAGE is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be true or false")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages: a non-empty list is required")
    systems: list[str] = []
    if api is Api.ANTHROPIC and body.get("system") is not None:
        systems.append(_text_of(body["system"], "system"))
    messages: list[Message] = []
    for index, item in enumerate(raw_messages):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where}: must be an object with role and content")
        role = item.get("role")
        text = _text_of(item.get("content"), f"{where}.content")
        if api is Api.OPENAI and role in ("system", "developer"):
            systems.append(text)
        elif role in ("user", "assistant"):
            messages.append(Message(role, text))
        else:
            raise BadRequest(f"{where}.role: {str(role)[:40]!r} is not supported here")
    if not messages:
        raise BadRequest("messages: at least one user message is required")
    max_tokens = _max_tokens(body, api)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return GatewayRequest(
        api=api,
        model=model.strip(),
        messages=tuple(messages),
        system="\n\n".join(systems) if systems else None,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
    )


def _max_tokens(body: dict[str, Any], api: Api) -> int:
    names = ("max_tokens",) if api is Api.ANTHROPIC else ("max_completion_tokens", "max_tokens")
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"{name}: must be a positive whole number")
        return value
    return DEFAULT_MAX_TOKENS


def _text_of(content: Any, where: str) -> str:
    """The text of a ``content`` field: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise BadRequest(f"{where}: a text part needs a text string")
                texts.append(text)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{where}: only text is supported, not {str(kind)[:40]!r}")
        return "".join(texts)
    raise BadRequest(f"{where}: must be a string or a list of text parts")


@dataclass(frozen=True)
class Failure:
    """A failed call as an HTTP answer: status, error type, message, retry hint.

    Attributes:
        status: the HTTP status to answer with.
        kind: attune's failure kind (``rate_limit``, ``breaker_open``, ``server_error`` …).
        message: one line for the caller.
        retry_after_s: when a retry may succeed (sent as ``retry-after``), when known.
    """

    status: int
    kind: str
    message: str
    retry_after_s: float | None = None

    def headers(self) -> dict[str, str]:
        """``retry-after`` (whole seconds, at least 1) when a wait is known."""
        if self.retry_after_s is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after_s)))}


_STATUS_OF_KIND = {
    BREAKER_OPEN: 503,
    "rate_limit": 429,
    "connection": 502,
    "malformed_response": 502,
    "timeout": 504,
    "overloaded": 529,
    "server_error": 500,
    "bad_request": 400,
    "auth": 401,
    "billing": 402,
    "permission": 403,
    "not_found": 404,
    "too_large": 413,
}


def failure_of(response: LLMResponse) -> Failure:
    """How a failed envelope is answered: the last attempt's status where one came back.

    A 429 stays a 429 and an open circuit is a 503, both with ``retry-after`` when known, so
    an SDK's own retry waits as long as attune would. A connection dropped or a timeout is a
    502 / 504 (there was no status to pass on).
    """
    kind = response.error_kind or "server_error"
    sent = [a for a in response.attempts if a.sent]
    last = sent[-1] if sent else None
    status = _STATUS_OF_KIND.get(kind, 502)
    if kind != BREAKER_OPEN and last is not None and last.status and last.status >= 400:
        status = last.status
    if kind == BREAKER_OPEN or not sent:
        status = 503
    return Failure(status, kind, response.error or "the call failed", response.retry_after_s)


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class Shape:
    """Renders answers, stream events and errors in one API's shape."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.id = (
            f"chatcmpl-{uuid.uuid4().hex[:24]}"
            if api is Api.OPENAI
            else f"msg_{uuid.uuid4().hex[:24]}"
        )
        self.created = int(time.time())

    def error_document(self, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
        """The API's error body for ``status``."""
        if self.api is Api.OPENAI:
            error_type = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "api_error")
            return {"error": {"message": message, "type": error_type, "param": None, "code": kind}}
        error_type = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": error_type, "message": message}}

    def message(self, response: LLMResponse) -> dict[str, Any]:
        """A whole non-streamed answer; ``model`` is the model that answered."""
        input_tokens = response.input_tokens or 0
        output_tokens = response.output_tokens or 0
        if self.api is Api.OPENAI:
            return {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": response.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": response.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
            }
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": [{"type": "text", "text": response.content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    def stream_start(self, model: str) -> bytes:
        """The events that open a stream, before any text."""
        if self.api is Api.OPENAI:
            return self._chunk(model, {"role": "assistant", "content": ""}, None)
        start = {
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        return _event("message_start", start) + _event("content_block_start", block)

    def stream_text(self, model: str, text: str) -> bytes:
        """One piece of text, as it arrived."""
        if self.api is Api.OPENAI:
            return self._chunk(model, {"content": text}, None)
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        }
        return _event("content_block_delta", delta)

    def stream_end(self, response: LLMResponse, *, include_usage: bool) -> bytes:
        """The events that close a full answer."""
        input_tokens = response.input_tokens or 0
        output_tokens = response.output_tokens or 0
        if self.api is Api.OPENAI:
            out = self._chunk(response.model, {}, "stop")
            if include_usage:
                usage = {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                }
                chunk = self._chunk_document(response.model, None, None)
                chunk["choices"] = []
                chunk["usage"] = usage
                out += _data(chunk)
            return out + b"data: [DONE]\n\n"
        return (
            _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
            + _event("message_stop", {"type": "message_stop"})
        )

    def stream_error(self, failure: Failure) -> bytes:
        """An error after the stream began: the SDKs raise it from their stream iterator."""
        document = self.error_document(failure.status, failure.message, failure.kind)
        if self.api is Api.OPENAI:
            return _data(document)
        return _event("error", document)

    def _chunk(self, model: str, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        return _data(self._chunk_document(model, delta, finish_reason))

    def _chunk_document(
        self, model: str, delta: dict[str, Any] | None, finish_reason: str | None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
        }


def _data(document: Any) -> bytes:
    return b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"


def _event(name: str, document: Any) -> bytes:
    payload = json.dumps(document, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"
