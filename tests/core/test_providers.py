"""Provider adapters over httpx.MockTransport: request shapes, answers, streams, error kinds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from attune_cli.core.providers import (
    AnthropicAdapter,
    CallFailed,
    ChatRequest,
    Endpoint,
    OpenAIAdapter,
    ProviderAdapter,
    resolve_endpoints,
)
from attune_cli.core.providers.base import iter_sse
from attune_cli.core.registry import BUILTIN_PROVIDERS, Provider, load_registry

KEY = "sk-test-0123456789abcdefSECRET"
ANTHROPIC = next(p for p in BUILTIN_PROVIDERS if p.name == "anthropic")
OPENAI = next(p for p in BUILTIN_PROVIDERS if p.name == "openai")

Handler = Callable[[httpx.Request], httpx.Response]


def adapter(api: str, key: str | None = KEY) -> ProviderAdapter:
    if api == "anthropic":
        return AnthropicAdapter(Endpoint(ANTHROPIC, "http://llm.test", key, True))
    return OpenAIAdapter(Endpoint(OPENAI, "http://llm.test/v1", key, True))


def call(
    api: str,
    handler: Handler,
    *,
    stream: bool = True,
    key: str | None = KEY,
    request: ChatRequest | None = None,
) -> tuple[str, list[str]]:
    pieces: list[str] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        completion = adapter(api, key).call(
            client,
            request or ChatRequest("some-model", "hi", system="be brief", max_tokens=64),
            stream=stream,
            on_text=pieces.append,
        )
    return completion.content, pieces


def failure(api: str, handler: Handler, *, stream: bool = True) -> CallFailed:
    with pytest.raises(CallFailed) as caught:
        call(api, handler, stream=stream)
    return caught.value


def sse(*events: tuple[str | None, object]) -> httpx.Response:
    body = ""
    for name, data in events:
        if name:
            body += f"event: {name}\n"
        body += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def anthropic_stream(
    *pieces: str, tail: list[tuple[str | None, object]] | None = None
) -> httpx.Response:
    events: list[tuple[str | None, object]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"usage": {"input_tokens": 21, "output_tokens": 1}},
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0}),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}},
        )
        for p in pieces
    ]
    events += (
        tail
        if tail is not None
        else [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 9},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )
    return sse(*events)


def openai_chunk(content: str | None = None, finish: str | None = None) -> dict[str, object]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_anthropic_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return anthropic_stream("ok")

    call("anthropic", handler)
    request = seen[0]
    assert str(request.url) == "http://llm.test/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "model": "some-model",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "be brief",
        "stream": True,
    }


def test_openai_request_shape_and_token_field_per_model() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse((None, openai_chunk("ok", "stop")), (None, "[DONE]"))

    call(
        "openai",
        handler,
        request=ChatRequest("llama3.1:8b", "hi", system="be brief", max_tokens=64),
    )
    call("openai", handler, request=ChatRequest("gpt-5-mini", "hi", max_tokens=64))
    local, reasoning = (json.loads(r.content) for r in seen)
    assert str(seen[0].url) == "http://llm.test/v1/chat/completions"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert local["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert local["max_tokens"] == 64 and "max_completion_tokens" not in local
    # OpenAI's reasoning models refuse max_tokens.
    assert reasoning["max_completion_tokens"] == 64 and "max_tokens" not in reasoning
    assert local["stream"] is True and local["stream_options"] == {"include_usage": True}


def test_no_key_sends_no_auth_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse((None, openai_chunk("ok", "stop")), (None, "[DONE]"))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        adapter("openai", key=None).call(client, ChatRequest("m", "hi"))
    assert "authorization" not in seen[0].headers


def test_anthropic_stream_delivers_pieces_in_order_with_usage() -> None:
    with httpx.Client(
        transport=httpx.MockTransport(lambda r: anthropic_stream("Hel", "lo"))
    ) as client:
        pieces: list[str] = []
        completion = adapter("anthropic").call(
            client, ChatRequest("m", "hi"), on_text=pieces.append
        )
    assert pieces == ["Hel", "lo"]
    assert completion.content == "Hello"
    assert (completion.input_tokens, completion.output_tokens) == (21, 9)
    assert completion.stop_reason == "end_turn"


def test_openai_stream_reads_the_usage_chunk() -> None:
    response = sse(
        (None, openai_chunk("")),
        (None, openai_chunk("Hi ")),
        (None, openai_chunk("there", None)),
        (None, openai_chunk(None, "stop")),
        (None, {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
        (None, "[DONE]"),
    )
    with httpx.Client(transport=httpx.MockTransport(lambda r: response)) as client:
        pieces: list[str] = []
        completion = adapter("openai").call(client, ChatRequest("m", "hi"), on_text=pieces.append)
    assert pieces == ["Hi ", "there"]
    assert (completion.content, completion.input_tokens, completion.output_tokens) == (
        "Hi there",
        7,
        2,
    )


def test_non_streamed_answers_of_both_apis() -> None:
    anthropic_body = {
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Hello"},
            {"type": "text", "text": " world"},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    openai_body = {
        "choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    content, pieces = call(
        "anthropic", lambda r: httpx.Response(200, json=anthropic_body), stream=False
    )
    assert content == "Hello world" and pieces == ["Hello world"]
    content, _ = call("openai", lambda r: httpx.Response(200, json=openai_body), stream=False)
    assert content == "Hi"


def test_a_json_answer_to_a_stream_request_is_still_read() -> None:
    body = {"choices": [{"message": {"content": "plain"}, "finish_reason": "stop"}]}
    content, pieces = call("openai", lambda r: httpx.Response(200, json=body))
    assert content == "plain" and pieces == ["plain"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "bad_request"),
        (401, "auth"),
        (403, "permission"),
        (404, "not_found"),
        (408, "timeout"),
        (409, "conflict"),
        (413, "too_large"),
        (422, "bad_request"),
        (429, "rate_limit"),
        (500, "server_error"),
        (503, "server_error"),
        (529, "overloaded"),
    ],
)
@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_http_status_gives_the_failure_kind(api: str, status: int, kind: str) -> None:
    body = {"error": {"message": "nope", "type": "whatever", "code": None}}
    failed = failure(api, lambda r: httpx.Response(status, json=body))
    assert (failed.kind, failed.status) == (kind, status)
    assert f"HTTP {status}" in failed.message and "nope" in failed.message


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("invalid_request_error", "bad_request"),
        ("authentication_error", "auth"),
        ("permission_error", "permission"),
        ("not_found_error", "not_found"),
        ("request_too_large", "too_large"),
        ("rate_limit_error", "rate_limit"),
        ("api_error", "server_error"),
        ("overloaded_error", "overloaded"),
    ],
)
def test_anthropic_error_types(error_type: str, kind: str) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "said the server"}}
    failed = failure("anthropic", lambda r: httpx.Response(500, json=body))
    assert failed.kind == kind
    assert error_type in failed.message


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("overloaded_error", "overloaded"),
        ("api_error", "server_error"),
        ("rate_limit_error", "rate_limit"),
    ],
)
def test_anthropic_error_event_after_http_200_is_classified_by_type(
    error_type: str, kind: str
) -> None:
    tail = [("error", {"type": "error", "error": {"type": error_type, "message": "mid"}})]
    pieces: list[str] = []
    with (
        httpx.Client(
            transport=httpx.MockTransport(lambda r: anthropic_stream("Hel", tail=tail))
        ) as client,
        pytest.raises(CallFailed) as caught,
    ):
        adapter("anthropic").call(client, ChatRequest("m", "hi"), on_text=pieces.append)
    assert (caught.value.kind, caught.value.status) == (kind, 200)
    assert pieces == ["Hel"]  # what arrived before the error was passed on


def test_openai_error_chunk_mid_stream() -> None:
    response = sse(
        (None, openai_chunk("Hi")),
        (None, {"error": {"message": "boom", "type": "server_error", "code": None}}),
    )
    failed = failure("openai", lambda r: response)
    assert (failed.kind, failed.status) == ("server_error", 200)
    assert "boom" in failed.message


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_malformed_json_body_and_stream_event(api: str) -> None:
    broken = httpx.Response(
        200, headers={"content-type": "application/json"}, content=b'{"id": "x", "con'
    )
    assert failure(api, lambda r: broken, stream=False).kind == "malformed_response"
    garbage = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"data: {not json\n\n"
    )
    assert failure(api, lambda r: garbage).kind == "malformed_response"
    wrong_shape = httpx.Response(200, json={"unexpected": True})
    assert failure(api, lambda r: wrong_shape, stream=False).kind == "malformed_response"


def test_error_body_that_is_not_json_keeps_the_status_kind() -> None:
    failed = failure("openai", lambda r: httpx.Response(502, content=b"<html>Bad gateway</html>"))
    assert (failed.kind, failed.status) == ("server_error", 502)
    assert "Bad gateway" in failed.message


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_stream_cut_before_its_end_marker_is_a_connection_failure(api: str) -> None:
    if api == "anthropic":
        response = anthropic_stream("Hel", tail=[])
    else:
        response = sse((None, openai_chunk("Hel")))
    failed = failure(api, lambda r: response)
    assert failed.kind == "connection"


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (httpx.ConnectTimeout("slow connect"), "timeout"),
        (httpx.ReadTimeout("slow read"), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "connection",
        ),
    ],
)
def test_transport_errors(raised: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    failed = failure("openai", handler)
    assert failed.kind == kind and failed.status is None


def test_retry_headers_are_kept_on_the_failure() -> None:
    headers = {
        "retry-after": "7",
        "retry-after-ms": "6500",
        "x-should-retry": "false",
        "x-other": "1",
    }
    failed = failure("anthropic", lambda r: httpx.Response(429, headers=headers, json={}))
    assert failed.headers == {
        "retry-after": "7",
        "retry-after-ms": "6500",
        "x-should-retry": "false",
    }
    assert failed.should_retry_header is False


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_a_key_echoed_by_the_server_never_reaches_the_message(api: str) -> None:
    body = {"type": "error", "error": {"type": "authentication_error", "message": f"bad key {KEY}"}}
    failed = failure(api, lambda r: httpx.Response(401, json=body))
    assert KEY not in failed.message and KEY not in str(failed)
    assert "***" in failed.message


def test_iter_sse_joins_data_lines_and_skips_comments() -> None:
    lines = ["event: a", "data: 1", "data: 2", "", ": keep-alive", "", "data: last"]
    assert list(iter_sse(iter(lines))) == [("a", "1\n2"), (None, "last")]


def test_endpoints_env_over_config_and_what_counts_as_configured() -> None:
    config = {"providers": {"anthropic": {"base_url": "http://proxy.local:8080/"}}}
    registry = load_registry(config, Path("config.toml"))

    def no_keys(provider: Provider) -> str | None:
        return None

    endpoints = resolve_endpoints(registry, config, {}, no_keys)
    assert endpoints["anthropic"].base_url == "http://proxy.local:8080"
    assert endpoints["anthropic"].configured  # an explicit base URL needs no key
    assert not endpoints["openai"].configured
    assert endpoints["openai"].base_url == "https://api.openai.com/v1"

    environ = {
        "OPENAI_BASE_URL": "http://localhost:11434/v1/",
        "ANTHROPIC_BASE_URL": "http://a.local",
    }
    endpoints = resolve_endpoints(registry, config, environ, no_keys)
    assert endpoints["openai"].base_url == "http://localhost:11434/v1"
    assert endpoints["openai"].configured
    assert endpoints["anthropic"].base_url == "http://a.local"

    keyed = resolve_endpoints(registry, {}, {}, lambda p: KEY if p.name == "openai" else None)
    assert keyed["openai"].configured and keyed["openai"].api_key == KEY
    assert not keyed["anthropic"].configured
