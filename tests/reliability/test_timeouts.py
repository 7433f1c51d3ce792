"""Deadlines end to end: servers that never finish answering, against ``attune ask --timeout 1``.

Each server is a raw socket on 127.0.0.1 (so it can misbehave below HTTP: headers a byte at a
time, a body that never completes) and stays misbehaving for longer than any test. A real
``attune`` process must give up at its deadline plus process start-up, exit 1, and say it timed
out, whatever the server keeps sending. A script that sends anything sends a byte at least every
0.2 s, well inside the deadline, so a timeout that restarts with each byte read never fires: only
a deadline on the whole call ends these runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from helpers.reliability import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, assert_clean_failure

pytestmark = pytest.mark.e2e

DEADLINE_S = 1.0
DEADLINE = f"{DEADLINE_S:g}"  # as given to --timeout and as the error message says it
MARGIN_S = 1.0
"""Beyond the deadline and twice what a quick failure of the same command took in the same
test (``quick_failure_s``: process start-up, imports, config, SQLite and exit on this
machine, at this moment's load; twice, as the load changes between the two runs); a run
that ignored its deadline takes the test's whole 15 s."""

Script = Callable[[socket.socket, threading.Event], None]


def _trickle(connection: socket.socket, stop: threading.Event, data: bytes, pace_s: float) -> None:
    for index in range(len(data)):
        if stop.wait(pace_s):
            return
        connection.sendall(data[index : index + 1])


def never_answers(connection: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def headers_byte_by_byte(connection: socket.socket, stop: threading.Event) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + b"x-pad: y\r\n" * 200
    _trickle(connection, stop, head, 0.05)


def keep_alive_comments(connection: socket.socket, stop: threading.Event) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
    while not stop.wait(0.2):
        connection.sendall(b": keep-alive\n\n")


def json_byte_by_byte(connection: socket.socket, stop: threading.Event) -> None:
    body = b'{"choices": [{"message": {"content": "' + b"x" * 2000 + b'"}}]}'
    connection.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % len(body)
    )
    _trickle(connection, stop, body, 0.05)


def slow_500_body(connection: socket.socket, stop: threading.Event) -> None:
    body = b'{"error": {"type": "server_error", "message": "' + b"x" * 2000 + b'"}}'
    connection.sendall(
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body)
    )
    _trickle(connection, stop, body, 0.05)


class RawServer:
    """A socket server on 127.0.0.1 that reads each request's head and hands it to a script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stop = threading.Event()
        self.requests = 0
        self.reached = threading.Event()  # a request's head has arrived
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            try:
                received = b""
                while b"\r\n\r\n" not in received:
                    piece = connection.recv(65536)
                    if not piece:
                        return
                    received += piece
                self.requests += 1
                self.reached.set()
                self.script(connection, self.stop)
            except OSError:
                pass  # attune hung up at its deadline: what the test wants

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


@contextmanager
def serving(script: Script) -> Iterator[RawServer]:
    with RawServer(script) as server:
        yield server


@dataclass(frozen=True)
class RawServerAddress:
    """Where a provider would be, for a run that only needs its URL."""

    url: str


def provider_env(server: RawServer | RawServerAddress, api: str, home: Path) -> dict[str, str]:
    if api == "anthropic":
        env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY}
    else:
        env = {"OPENAI_BASE_URL": f"{server.url}/v1", "OPENAI_API_KEY": FAKE_OPENAI_KEY}
    return {**os.environ, **env, "ATTUNE_HOME": str(home)}


CASES = {
    "accepts and never answers": (never_answers, "openai"),
    "headers one byte at a time": (headers_byte_by_byte, "anthropic"),
    "SSE keep-alive comments forever": (keep_alive_comments, "openai"),
    "JSON body one byte at a time": (json_byte_by_byte, "openai"),
    "slow 500 body": (slow_500_body, "anthropic"),
}


def quick_failure_s(api: str, model: str, home: Path) -> float:
    """The wall time of the same ``ask`` against a port that refuses at once (a fresh home)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = RawServerAddress(f"http://127.0.0.1:{port}")
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", model, "--timeout", DEADLINE],
        env=provider_env(refused, api, home),
        capture_output=True,
        text=True,
        timeout=15,
    )
    took_s = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    return took_s


@pytest.mark.parametrize("name", list(CASES))
def test_ask_gives_up_at_its_timeout_whatever_the_server_sends(
    name: str, attune_home: Path, tmp_path: Path
) -> None:
    script, api = CASES[name]
    model = "claude-haiku-4-5" if api == "anthropic" else "gpt-5-mini"
    with serving(script) as server:
        began = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", model, "--timeout", DEADLINE],
            env=provider_env(server, api, attune_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The reference runs while the ask waits on the server (it is idle until its
            # deadline), so both see the same load; a request that never arrives fails below.
            server.reached.wait(timeout=15)
            reference_s = quick_failure_s(api, model, tmp_path / "reference-home")
            stdout, stderr_text = child.communicate(timeout=15)
            took_s = time.monotonic() - began
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        result = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr_text)
        requests = server.requests
    stderr = assert_clean_failure(result, 1)
    assert took_s < DEADLINE_S + 2 * reference_s + MARGIN_S, (
        f"{name}: --timeout {DEADLINE} took {took_s:.1f} s "
        f"(a quick failure took {reference_s:.1f} s)"
    )
    assert requests >= 1, "the request never reached the server"
    assert "timed out" in stderr and f"{DEADLINE} s deadline" in stderr, stderr
    assert "--timeout" in stderr  # the hint says how to allow more time
    assert result.stdout == ""
    # Not a terminal: no trace of the spinner.
    assert "waiting for" not in stderr
    assert FAKE_OPENAI_KEY not in stderr and FAKE_ANTHROPIC_KEY not in stderr


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error(value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", "gpt-5-mini", "--timeout", value],
        env={**os.environ, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "--timeout" in result.stderr
    assert "Traceback" not in result.stderr


def _spawn_ask(server: RawServer, home: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "attune_cli", "ask", "hi", "-m", "gpt-5-mini", *args],
        env={**provider_env(server, "openai", home), "TERM": "xterm"},
        encoding="utf-8",
        timeout=15,
        dimensions=(30, 120),
    )


def test_on_a_terminal_a_spinner_names_the_model_and_counts_the_seconds(
    attune_home: Path,
) -> None:
    with serving(never_answers) as server:
        # The second count ("1 s") shows for the whole second before the 2 s deadline ends it.
        child = _spawn_ask(server, attune_home, "--timeout", "2")
        child.expect(r"waiting for gpt-5-mini \(openai\) · 0 s")
        child.expect(r"waiting for gpt-5-mini \(openai\) · 1 s")
        child.expect("Error:")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 1


def test_ctrl_c_while_the_spinner_turns_exits_130(attune_home: Path) -> None:
    with serving(never_answers) as server:
        child = _spawn_ask(server, attune_home, "--timeout", "20")
        child.expect("waiting for gpt-5-mini")
        child.sendintr()
        child.expect("Interrupted")
        child.expect(pexpect.EOF)
        child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in (child.before or "")
