"""Shared pieces of the reliability suite: running attune, a scriptable 127.0.0.1 server, a
process zygote for cheap kill targets, and the fake secrets every test hunts for.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Distinctive fake keys: long enough that a hint (sk-…wxyz) is not the key, and unlike any
# text attune prints, so one occurrence anywhere is a leak.
FAKE_ANTHROPIC_KEY = "sk-ant-FAKE-reliability-4f1c9e27b3d84a6c9e0f-QZXW"
FAKE_OPENAI_KEY = "sk-proj-FAKE-reliability-8b2d6a0e4c1f47d9a3e5-MKJH"
FAKE_KEYS = (FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY)


def attune(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m attune_cli ARGS`` with the test's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def attune_in_process(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``attune`` command tree in this process, as ``attune()`` runs it in a new one.

    For tests whose subject is not the process boundary (a history built by many commands):
    the same parsing, code and exit code, without 0.2 s of interpreter start-up a command.
    """
    from typer.testing import CliRunner

    from attune_cli.cli.app import app

    result = CliRunner().invoke(app, list(args), env=dict(env or {}), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["attune", *args], result.exit_code, result.stdout, result.stderr
    )


def start_attune(
    *args: str, env: Mapping[str, str] | None = None, stdin: int | None = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """Start ``python -m attune_cli ARGS`` without waiting for it."""
    return subprocess.Popen(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, **(env or {})},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The run exited ``code`` with a one-line ``Error:`` and no traceback; returns stderr."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Error:" in result.stderr, result.stderr
    assert "unexpected" not in result.stderr, result.stderr
    return result.stderr


# --- a 127.0.0.1 server whose every answer a test writes ------------------------------------


@dataclass
class Exchange:
    """One request to the ``LoopbackServer`` and the means to answer it (or not).

    Attributes:
        api: ``anthropic`` or ``openai`` (from the path).
        body: the parsed JSON body.
        headers: request headers, lower-case names.
    """

    handler: BaseHTTPRequestHandler
    api: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def prompt(self) -> str:
        messages = self.body.get("messages") or [{}]
        return str(messages[-1].get("content", ""))

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def send(
        self,
        status: int,
        body: bytes | str | Any,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A whole response; ``body`` is bytes, text, or a JSON document."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps(body).encode()
        handler = self.handler
        handler.send_response(status)
        handler.send_header("content-type", content_type)
        handler.send_header("content-length", str(len(raw)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(raw)
        handler.wfile.flush()

    def error(self, status: int, error_type: str, message: str, **headers: str) -> None:
        """An error in the API's own shape."""
        if self.api == "anthropic":
            document: Any = {"type": "error", "error": {"type": error_type, "message": message}}
        else:
            document = {"error": {"type": error_type, "message": message, "code": None}}
        self.send(status, document, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def answer(self, text: str = "fine") -> None:
        """A complete successful answer, streamed when the request asked for a stream."""
        if self.stream:
            self.begin_stream()
            for event in answer_events(self.api, text):
                self.chunk(event)
            self.end_stream()
        elif self.api == "anthropic":
            self.send(
                200,
                {
                    "type": "message",
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 3, "output_tokens": 2},
                },
            )
        else:
            self.send(
                200,
                {
                    "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                },
            )

    def begin_stream(self) -> None:
        handler = self.handler
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()

    def chunk(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
        self.handler.wfile.flush()

    def end_stream(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def drop(self) -> None:
        """Close the connection without another byte."""
        self.handler.close_connection = True


def answer_events(api: str, text: str) -> list[str]:
    """The SSE events of a complete answer ``text`` in one piece per word."""
    words = text.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    if api == "anthropic":
        events = [
            'event: message_start\ndata: {"type": "message_start", "message": '
            '{"usage": {"input_tokens": 3, "output_tokens": 1}}}\n\n'
        ]
        events += [
            "event: content_block_delta\ndata: "
            + json.dumps(
                {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}}
            )
            + "\n\n"
            for p in pieces
        ]
        events.append(
            'event: message_delta\ndata: {"type": "message_delta", "delta": '
            '{"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}\n\n'
        )
        events.append('event: message_stop\ndata: {"type": "message_stop"}\n\n')
        return events
    events = [
        "data: "
        + json.dumps({"choices": [{"delta": {"content": p}, "finish_reason": None}]})
        + "\n\n"
        for p in pieces
    ]
    events.append('data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n')
    events.append("data: [DONE]\n\n")
    return events


Script = Callable[[Exchange], None]


@dataclass
class Visit:
    """When one request arrived and when its answer was done (``time.monotonic``)."""

    model: str
    prompt: str
    arrived: float
    done: float | None = None


@dataclass
class _ServerState:
    script: Script
    lock: threading.Lock = field(default_factory=threading.Lock)
    visits: list[Visit] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a timeout, Ctrl-C, a dropped connection we scripted) is part
        # of the test, not a server error worth a traceback on the test's stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """An HTTP server on 127.0.0.1 that hands each POST to ``script(exchange)``.

    It logs every request with its arrival and end times and tracks how many were in flight
    at once, so a test can check, from the provider's side, what attune sent.
    """

    def __init__(self, script: Script) -> None:
        self.state = _ServerState(script)
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                api = "anthropic" if self.path.rstrip("/").endswith("/messages") else "openai"
                body = json.loads(raw or b"{}")
                exchange = Exchange(
                    self, api, body, {k.lower(): v for k, v in self.headers.items()}
                )
                visit = Visit(exchange.model, exchange.prompt, time.monotonic())
                with state.lock:
                    state.visits.append(visit)
                    state.in_flight += 1
                    state.max_in_flight = max(state.max_in_flight, state.in_flight)
                try:
                    state.script(exchange)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    with state.lock:
                        state.in_flight -= 1
                        visit.done = time.monotonic()

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for the serve loop's next poll: 0.05 s, not the default half second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": f"{self.url}/v1"}

    @property
    def visits(self) -> list[Visit]:
        with self.state.lock:
            return list(self.state.visits)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def overlapping(visits: list[Visit]) -> list[tuple[Visit, Visit]]:
    """Pairs of requests that were in flight at the same time."""
    spans = sorted(visits, key=lambda v: v.arrived)
    pairs = []
    for index, first in enumerate(spans):
        end = first.done if first.done is not None else float("inf")
        for second in spans[index + 1 :]:
            if second.arrived < end:
                pairs.append((first, second))
    return pairs


# --- a zygote: one pre-imported process that forks kill targets in a millisecond ----------------

_ZYGOTE = r"""
import json, os, sys, traceback
sys.path.insert(0, os.environ["ATTUNE_TESTS_DIR"])
from helpers import reliability_workers as workers
workers.warm_up()
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            getattr(workers, job["worker"])(write_end, **job["args"])
        except BaseException:
            traceback.print_exc()
            os._exit(3)
        os._exit(0)
    os.close(write_end)
    print(json.dumps({"pid": pid}), flush=True)
    # The worker writes one byte when it starts its first write (the kill may come any time
    # after), so the parent never kills a child that has not yet begun.
    os.read(read_end, 1)
    print(json.dumps({"started": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    os.close(read_end)
    print(json.dumps({"pid": pid, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status)
                      else None, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status)
                      else None}), flush=True)
"""


class Zygote:
    """A process that imports attune once and forks one worker per job (see ``_ZYGOTE``).

    A fork costs about a millisecond where a fresh interpreter costs a hundred, which keeps
    fifty kills per guarantee cheap. The zygote is single-threaded, so forking it is safe.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                **(env or {}),
                "ATTUNE_TESTS_DIR": str(Path(__file__).parent.parent),
            },
        )
        assert self._readline() == "ready"

    def _readline(self) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def kill_during(self, worker: str, delay_s: float, **args: Any) -> dict[str, Any]:
        """Fork ``worker(**args)``, SIGKILL it ``delay_s`` after it began writing.

        Returns:
            ``{"pid", "signal", "exit"}``: how the worker ended (signal 9 when the kill landed).
        """
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"worker": worker, "args": args}) + "\n")
        self._process.stdin.flush()
        pid = json.loads(self._readline())["pid"]
        started = json.loads(self._readline())
        assert started == {"started": pid}
        if delay_s > 0:
            time.sleep(delay_s)
        with contextlib.suppress(ProcessLookupError):  # it ended on its own first
            os.kill(pid, 9)
        ended: dict[str, Any] = json.loads(self._readline())
        return ended

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()


@contextmanager
def zygote(env: Mapping[str, str] | None = None) -> Iterator[Zygote]:
    """A ``Zygote`` that is closed (and reaped) at the end of the block."""
    process = Zygote(env)
    try:
        yield process
    finally:
        process.close()
