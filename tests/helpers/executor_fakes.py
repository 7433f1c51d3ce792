"""Fakes shared by the executor tests: a scripted provider, a clock, a breaker, a store."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from attune_cli.core.errors import BreakerOpenError
from attune_cli.core.executor import ResilientExecutor, RetryPolicy
from attune_cli.core.providers import Endpoint
from attune_cli.core.registry import load_registry

KEY = "sk-test-0123456789abcdefSECRET"
EPOCH = 1_800_000_000.0
START_USAGE = {"input_tokens": 10}

Step = httpx.Response | BaseException | Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Monotonic seconds that move only when the executor sleeps (or a test advances them)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(round(seconds, 6))
        self.now += seconds


def answer(request: httpx.Request, text: str = "Hello there") -> httpx.Response:
    """A full streamed answer in the API the request was sent to."""
    pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
    if request.url.path.endswith("/messages"):
        events = [
            (
                "message_start",
                {"type": "message_start", "message": {"usage": {"input_tokens": 10}}},
            ),
            *[
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}},
                )
                for p in pieces
            ],
            ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 4}}),
            ("message_stop", {"type": "message_stop"}),
        ]
    else:
        events = [
            *[
                (None, {"choices": [{"delta": {"content": p}, "finish_reason": None}]})
                for p in pieces
            ],
            (None, {"choices": [{"delta": {}, "finish_reason": "stop"}]}),
            (None, {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 4}}),
        ]
    body = "".join(
        (f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
        for name, data in events
    )
    if not request.url.path.endswith("/messages"):
        body += "data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def error(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"message": f"status {status}"}})


def stream_then_error(pieces: int, error_type: str = "overloaded_error") -> Step:
    """An Anthropic stream with ``pieces`` text deltas, then an error event."""

    def respond(request: httpx.Request) -> httpx.Response:
        body = ""
        for index in range(pieces):
            delta = {
                "type": "content_block_delta",
                "delta": {"type": "text_delta", "text": f"p{index} "},
            }
            body += f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n"
        failure = {"type": "error", "error": {"type": error_type, "message": "mid-stream"}}
        body += f"event: error\ndata: {json.dumps(failure)}\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return respond


class ScriptedProvider:
    """Answers per model from a script; the last step of a script repeats; unknown models answer."""

    def __init__(self, **scripts: list[Step]) -> None:
        self.scripts = {model.replace("_", "-"): list(steps) for model, steps in scripts.items()}
        self.requests: list[httpx.Request] = []

    def script(self, model: str, *steps: Step) -> None:
        self.scripts[model] = list(steps)

    @property
    def models(self) -> list[str]:
        """The model of every request received, in order."""
        return [json.loads(r.content)["model"] for r in self.requests]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        steps = self.scripts.get(json.loads(request.content)["model"])
        if not steps:
            return answer(request)
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


@dataclass
class FakeBreaker:
    """Records what the executor tells it; keys in ``open_for`` are refused.

    Model outcomes go to ``after``, endpoint (``endpoint:…``) outcomes to ``endpoint_after``.
    """

    open_for: dict[str, float] = field(default_factory=dict)
    before: list[str] = field(default_factory=list)
    after: list[tuple[str, bool | None, float | None]] = field(default_factory=list)
    endpoint_after: list[tuple[str, bool | None]] = field(default_factory=list)

    def before_call(self, key: str) -> str:
        self.before.append(key)
        if key in self.open_for:
            raise BreakerOpenError(key, self.open_for[key])
        return key

    def after_call(
        self, permit: Any, *, failure: bool | None, retry_after_s: float | None = None
    ) -> None:
        if permit.startswith("endpoint:"):
            self.endpoint_after.append((permit, failure))
        else:
            self.after.append((permit, failure, retry_after_s))


@dataclass
class FakeStore:
    records: list[Any] = field(default_factory=list)
    fail: bool = False

    def record(self, call: Any) -> None:
        if self.fail:
            import sqlite3

            raise sqlite3.OperationalError("database is locked")
        self.records.append(call)


def make_executor(
    provider: ScriptedProvider,
    clock: FakeClock,
    *,
    configured: tuple[str, ...] = ("anthropic", "openai"),
    breaker: Any = None,
    store: Any = None,
    policy: RetryPolicy | None = None,
    config: dict[str, Any] | None = None,
) -> ResilientExecutor:
    registry = load_registry(config or {}, Path("config.toml"))
    endpoints = {
        name: Endpoint(
            p,
            "http://llm.test" if p.api == "anthropic" else "http://llm.test/v1",
            KEY if name in configured else None,
            name in configured,
        )
        for name, p in registry.providers.items()
    }
    return ResilientExecutor(
        registry,
        endpoints,
        breaker=breaker,
        store=store,
        client=httpx.Client(transport=httpx.MockTransport(provider.handler)),
        policy=policy,
        clock=clock,
        wall_clock=clock.wall,
        sleep=clock.sleep,
        rand=lambda: 0.0,
    )
