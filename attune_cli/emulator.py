"""A local LLM provider emulator speaking the Anthropic Messages API and OpenAI chat completions.

It serves ``POST /v1/messages`` and ``POST /v1/chat/completions``, JSON or server-sent events
(``"stream": true``), with per-model scripted behaviour: healthy, slow, failing in bursts,
HTTP 500 / 529 / 429 with ``retry-after``, malformed JSON, a dropped connection, an error event
mid-stream. ``attune demo``, the end-to-end tests and the benchmarks run against it; you can
too::

    python -m attune_cli.emulator --port 8765 --model gpt-5-mini=healthy --model gpt-5=529
    OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=x attune ask "hi" --model gpt-5-mini
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=x attune ask "hi" \\
        --model claude-haiku-4-5

In code::

    with ProviderEmulator({"gpt-5": Behaviour.bursts(ok=5, failing=5)}) as emulator:
        emulator.openai_base_url        # http://127.0.0.1:PORT/v1
        emulator.requests_for("gpt-5")  # how many requests the model received

Only the standard library is used, it listens on 127.0.0.1 only, and stopping it does not wait
for a slow reply to finish.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """A full answer.

    Attributes:
        text: the answer; a default sentence naming the model when None.
        delay_s: wait before the first byte (a slow model; past a client's read timeout).
        chunk_delay_s: wait between two streamed pieces.
    """

    text: str | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class Fail:
    """An HTTP error in the API's own error format.

    Attributes:
        status: the HTTP status (500, 529, 429 …).
        error_type: the API's error type; the usual one for the status when None.
        retry_after: the ``retry-after`` header (seconds or an HTTP date), when given.
        retry_after_ms: the ``retry-after-ms`` header, when given.
        should_retry: the ``x-should-retry`` header, when given.
        delay_s: wait before answering.
    """

    status: int = 500
    error_type: str | None = None
    retry_after: str | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Malformed:
    """HTTP 200 with a body that is not the API's JSON (in a stream: an event that is not JSON)."""


@dataclass(frozen=True)
class Drop:
    """The connection closes: before any response, or after ``after_chunks`` streamed pieces."""

    after_chunks: int = 0


@dataclass(frozen=True)
class StreamError:
    """HTTP 200, ``after_chunks`` pieces of text, then an error event of ``error_type``."""

    error_type: str = "overloaded_error"
    after_chunks: int = 1


Step = Reply | Fail | Malformed | Drop | StreamError

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}
_STATUS_OF_TYPE = {
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "rate_limit_error": 429,
    "timeout_error": 504,
}


class Behaviour:
    """What one model does, request after request: ``steps`` in order, then ``then`` forever.

    With ``cycle=True`` the steps repeat instead. Thread-safe: concurrent requests each take
    the next step.
    """

    def __init__(
        self, steps: Sequence[Step] = (), *, then: Step | None = None, cycle: bool = False
    ) -> None:
        if cycle and not steps:
            raise ValueError("a cycling behaviour needs steps")
        self.steps = tuple(steps)
        self.then: Step = then if then is not None else Reply()
        self.cycle = cycle
        self._served = 0
        self._lock = threading.Lock()

    def next_step(self) -> Step:
        """The step for the next request."""
        with self._lock:
            index = self._served
            self._served += 1
        if self.cycle:
            return self.steps[index % len(self.steps)]
        return self.steps[index] if index < len(self.steps) else self.then

    @classmethod
    def healthy(cls, text: str | None = None) -> Behaviour:
        """Answers every request at once."""
        return cls(then=Reply(text))

    @classmethod
    def slow(cls, delay_s: float = 1.0, text: str | None = None) -> Behaviour:
        """Answers every request after ``delay_s``."""
        return cls(then=Reply(text, delay_s=delay_s))

    @classmethod
    def failing(cls, status: int = 500, **fail: Any) -> Behaviour:
        """Fails every request with ``status`` (extra ``Fail`` fields as keywords)."""
        return cls(then=Fail(status, **fail))

    @classmethod
    def bursts(cls, ok: int = 5, failing: int = 5, status: int = 503, **fail: Any) -> Behaviour:
        """Alternates ``ok`` answers with a burst of ``failing`` errors, forever."""
        return cls([Reply()] * ok + [Fail(status, **fail)] * failing, cycle=True)

    @classmethod
    def script(cls, *steps: Step, then: Step | None = None) -> Behaviour:
        """The given steps in order, then healthy answers (or ``then``)."""
        return cls(steps, then=then)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received."""

    api: str
    model: str
    stream: bool
    headers: Mapping[str, str]
    body: Mapping[str, Any]


@dataclass
class _State:
    behaviours: dict[str, Behaviour]
    default: Behaviour
    api_key: str | None
    stopping: threading.Event = field(default_factory=threading.Event)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProviderEmulator:
    """The emulator server on 127.0.0.1, in a background thread.

    Args:
        behaviours: ``{model: Behaviour}``; models not named get ``default``.
        default: the behaviour of other models (healthy when None).
        api_key: when set, requests without this key get the API's 401.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        behaviours: Mapping[str, Behaviour] | None = None,
        *,
        default: Behaviour | None = None,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self._state = _State(dict(behaviours or {}), default or Behaviour.healthy(), api_key)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self._state
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def anthropic_base_url(self) -> str:
        """The value for ``ANTHROPIC_BASE_URL`` (no ``/v1``, as the SDK reads it)."""
        return self.url

    @property
    def openai_base_url(self) -> str:
        """The value for ``OPENAI_BASE_URL`` (with ``/v1``, as the SDK reads it)."""
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def requests_for(self, model: str | None = None) -> int:
        """How many requests ``model`` received (every model's when None)."""
        with self._state.lock:
            return sum(1 for r in self._state.requests if model is None or r.model == model)

    def set_behaviour(self, model: str, behaviour: Behaviour) -> None:
        """Change what ``model`` does from the next request on."""
        self._state.behaviours[model] = behaviour

    def start(self) -> ProviderEmulator:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="attune-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; slow replies in flight are abandoned."""
        self._state.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ProviderEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: fifty clients connecting at once overflowed it,
    # and each dropped SYN waits a whole second for its retransmission (a 1 s p99 that was
    # the emulator's, not the caller's).
    request_queue_size = 1024
    state: _State


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; Nagle + delayed ACK would add 40 ms to each.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the emulator runs inside tests and the demo."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout): nothing to answer.
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            state = self.server.state
            api = "anthropic" if "x-api-key" in self.headers else "openai"
            if state.api_key and not self._authorised(api, state.api_key):
                self._error(
                    api, Fail(401), "invalid x-api-key" if api == "anthropic" else "bad key"
                )
                return
            models = sorted(state.behaviours) or ["emulated"]
            self._json(
                200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}
            )
        else:
            self._json(404, {"error": {"type": "not_found_error", "message": "no such path"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/messages"):
            api = "anthropic"
        elif path.endswith("/chat/completions"):
            api = "openai"
        else:
            self._json(404, {"error": {"type": "not_found_error", "message": f"no route {path}"}})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self._error(api, Fail(400), "the request body is not a JSON object")
            return
        state = self.server.state
        model = str(body.get("model") or "")
        stream = body.get("stream") is True
        with state.lock:
            state.requests.append(
                RecordedRequest(api, model, stream, dict(self.headers.items()), body)
            )
        if state.api_key and not self._authorised(api, state.api_key):
            self._error(api, Fail(401), "invalid x-api-key" if api == "anthropic" else "bad key")
            return
        if not model:
            self._error(api, Fail(400), "model: field required")
            return
        step = state.behaviours.get(model, state.default).next_step()
        _Exchange(self, api, model, body, stream).play(step)

    def _authorised(self, api: str, key: str) -> bool:
        if api == "anthropic":
            return self.headers.get("x-api-key") == key
        return self.headers.get("authorization") == f"Bearer {key}"

    def _json(self, status: int, document: Any, headers: Mapping[str, str] | None = None) -> None:
        raw = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def _error(self, api: str, fail: Fail, message: str | None = None) -> None:
        headers: dict[str, str] = {}
        if fail.retry_after is not None:
            headers["retry-after"] = fail.retry_after
        if fail.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{fail.retry_after_ms:g}"
        if fail.should_retry is not None:
            headers["x-should-retry"] = "true" if fail.should_retry else "false"
        self._json(
            fail.status, _error_document(api, fail.status, fail.error_type, message), headers
        )

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the emulator stops first; False when it did."""
        return seconds <= 0 or not self.server.state.stopping.wait(seconds)


class _Exchange:
    """One request's answer, in the API's format, following one scripted step."""

    def __init__(
        self, handler: _Handler, api: str, model: str, body: dict[str, Any], stream: bool
    ) -> None:
        self.handler = handler
        self.api = api
        self.model = model
        self.body = body
        self.stream = stream
        self.id = uuid.uuid4().hex[:24]
        self.input_tokens = max(1, len(json.dumps(body.get("messages", ""))) // 4)

    def play(self, step: Step) -> None:
        if isinstance(step, Fail):
            if self.handler._wait(step.delay_s):
                self.handler._error(self.api, step)
        elif isinstance(step, Drop):
            if step.after_chunks and self.stream:
                self._stream(_pieces(self._text(None))[: step.after_chunks], 0.0, end=False)
            self.handler.close_connection = True
        elif isinstance(step, Malformed):
            self._malformed()
        elif isinstance(step, StreamError):
            if not self.stream:
                status = _STATUS_OF_TYPE.get(step.error_type, 500)
                self.handler._error(self.api, Fail(status, error_type=step.error_type))
                return
            pieces = _pieces(self._text(None))[: step.after_chunks]
            self._stream(pieces, 0.0, end=False)
            self._event("error", _error_document(self.api, 200, step.error_type, None))
            self._finish_chunks()
        else:
            if not self.handler._wait(step.delay_s):
                return
            text = self._text(step.text)
            if self.stream:
                self._stream(_pieces(text), step.chunk_delay_s, end=True)
            else:
                self.handler._json(200, self._message(text))

    def _text(self, text: str | None) -> str:
        return text if text is not None else f"Hello from {self.model} on the attune emulator."

    def _message(self, text: str) -> dict[str, Any]:
        output_tokens = len(_pieces(text))
        if self.api == "anthropic":
            return {
                "id": f"msg_{self.id}",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": output_tokens},
            }
        return {
            "id": f"chatcmpl-{self.id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": self.input_tokens + output_tokens,
            },
        }

    def _malformed(self) -> None:
        if not self.stream:
            raw = b'{"id": "broken", "content": [{"type": "text", "text": "cut off'
            handler = self.handler
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
            handler.wfile.flush()
            return
        self._begin()
        self._chunk(b"data: {this is not json\n\n")
        self._finish_chunks()

    def _stream(self, pieces: list[str], chunk_delay_s: float, *, end: bool) -> None:
        self._begin()
        if self.api == "anthropic":
            self._event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_{self.id}",
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                    },
                },
            )
            self._event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        else:
            self._event(None, self._chunk_of({"role": "assistant", "content": ""}, None))
        for index, piece in enumerate(pieces):
            if index and not self.handler._wait(chunk_delay_s):
                return
            if self.api == "anthropic":
                self._event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            else:
                self._event(None, self._chunk_of({"content": piece}, None))
        if not end:
            return
        if self.api == "anthropic":
            self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
            self._event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(pieces)},
                },
            )
            self._event("message_stop", {"type": "message_stop"})
        else:
            self._event(None, self._chunk_of({}, "stop"))
            usage_chunk = self._chunk_of({}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": len(pieces),
                "total_tokens": self.input_tokens + len(pieces),
            }
            self._event(None, usage_chunk)
            self._chunk(b"data: [DONE]\n\n")
        self._finish_chunks()

    def _chunk_of(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _begin(self) -> None:
        handler = self.handler
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream; charset=utf-8")
        handler.send_header("cache-control", "no-cache")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

    def _event(self, name: str | None, data: dict[str, Any]) -> None:
        prefix = f"event: {name}\n" if name else ""
        self._chunk(f"{prefix}data: {json.dumps(data)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        wfile = self.handler.wfile
        wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        wfile.flush()

    def _finish_chunks(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]


def _error_document(api: str, status: int, error_type: str | None, message: str | None) -> Any:
    text = message or (
        f"emulated error (HTTP {status})" if status != 200 else f"emulated {error_type} mid-stream"
    )
    if api == "anthropic":
        kind = error_type or _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": text}}
    default_type, code = _OPENAI_TYPES.get(status, ("server_error", None))
    return {
        "error": {"message": text, "type": error_type or default_type, "param": None, "code": code}
    }


def behaviour_from_spec(spec: str) -> Behaviour:
    """A behaviour from a short spec, as ``--model NAME=SPEC`` takes it.

    Specs: ``healthy``, ``slow[:SECONDS]``, ``bursts[:OK:FAILING]``, an HTTP status (``500``,
    ``529``), ``429[:RETRY_AFTER]``, ``malformed``, ``drop``, ``stream-error``,
    ``fail-first:N`` (N failures with 500, then healthy).

    Raises:
        ValueError: an unknown spec.
    """
    name, _, arg = spec.strip().lower().partition(":")
    args = [a for a in arg.split(":") if a]
    if name == "healthy":
        return Behaviour.healthy()
    if name == "slow":
        return Behaviour.slow(float(args[0]) if args else 1.0)
    if name == "bursts":
        ok, failing = (int(args[0]), int(args[1])) if len(args) == 2 else (5, 5)
        return Behaviour.bursts(ok, failing)
    if name == "429":
        return Behaviour.failing(429, retry_after=args[0] if args else "1")
    if name.isdigit() and 400 <= int(name) <= 599:
        return Behaviour.failing(int(name))
    if name == "malformed":
        return Behaviour(then=Malformed())
    if name == "drop":
        return Behaviour(then=Drop())
    if name == "stream-error":
        return Behaviour(then=StreamError())
    if name == "fail-first" and args:
        return Behaviour([Fail(500)] * int(args[0]))
    raise ValueError(f"unknown behaviour {spec!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m attune_cli.emulator",
        description="A local LLM provider emulator (Anthropic Messages + OpenAI chat).",
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a model's behaviour: healthy, slow[:S], bursts[:OK:FAIL], 500, 529, 429[:S], "
        "malformed, drop, stream-error, fail-first:N (others are healthy)",
    )
    parser.add_argument("--api-key", default=None, help="require this key (401 otherwise)")
    options = parser.parse_args(argv)
    behaviours = {}
    for item in options.model:
        name, sep, spec = item.partition("=")
        if not sep:
            parser.error(f"--model expects NAME=SPEC, got {item!r}")
        try:
            behaviours[name] = behaviour_from_spec(spec)
        except ValueError as exc:
            parser.error(str(exc))
    with ProviderEmulator(behaviours, api_key=options.api_key, port=options.port) as emulator:
        sys.stdout.write(
            f"attune provider emulator on {emulator.url}\n"
            f"  ANTHROPIC_BASE_URL={emulator.anthropic_base_url}\n"
            f"  OPENAI_BASE_URL={emulator.openai_base_url}\n"
            "Ctrl-C stops it.\n"
        )
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
