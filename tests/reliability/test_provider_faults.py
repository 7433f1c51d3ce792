"""Provider faults end to end: what a person running ``attune ask`` sees for each one.

A real ``attune`` process calls a 127.0.0.1 server scripted to fail in one way; each case
checks the exit code, the message on stderr (one ``Error:`` line and a hint, never a
traceback), what reached stdout, and how many requests the server received. The cases
``tests/e2e/test_ask_e2e.py`` already covers (a fault then recovery, 429 honoured, a slow
answer then recovery, malformed JSON, an error event after text, the breaker's trip and
probe) are not repeated: these are the faults that do not go away.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.reliability import (
    FAKE_OPENAI_KEY,
    Exchange,
    LoopbackServer,
    answer_events,
    assert_clean_failure,
    attune,
    attune_in_process,
    start_attune,
)

pytestmark = pytest.mark.e2e

# One retry, after a short back-off (0.05 s, not the default 0.5 s: no case is about its length).
FAST = "[executor]\nmax_retries = 1\nretry_delay_s = 0.05\n"


@dataclass(frozen=True)
class Fault:
    """One fault: the server's script, and what the person must see."""

    script: Callable[[Exchange], None]
    stderr: tuple[str, ...]
    requests: int
    config: str = FAST
    stdout: str = ""


def mid_stream_drop(exchange: Exchange) -> None:
    exchange.begin_stream()
    for event in answer_events(exchange.api, "Half an answer and then")[:3]:
        exchange.chunk(event)
    exchange.drop()  # no terminator, no [DONE]: the connection just ends


def unknown_error_event(exchange: Exchange) -> None:
    exchange.begin_stream()
    exchange.chunk('data: {"error": {"type": "brand_new_error", "message": "???"}}\n\n')
    exchange.end_stream()


FAULTS = {
    "500 that persists": Fault(
        lambda x: x.error(500, "server_error", "the database is on fire"),
        ("2 attempts, last HTTP 500 server_error", "Retry later"),
        2,
    ),
    "529 overloaded that persists": Fault(
        lambda x: x.error(529, "overloaded_error", "Overloaded", retry_after_ms="10"),
        ("HTTP 529 overloaded", "Retry in 1 s"),
        2,
    ),
    "429 asking for two minutes": Fault(
        # Past the 60 s cap: not slept on; the person is told when to come back.
        lambda x: x.error(429, "rate_limit_error", "slow down", retry_after="120"),
        ("HTTP 429 rate_limit", "Retry in 120 s"),
        2,
    ),
    "401 bad key": Fault(
        lambda x: x.error(401, "invalid_request_error", "Incorrect API key provided"),
        ("HTTP 401 auth", "not retried", "Hint: check the key: `attune auth status`"),
        1,
    ),
    "malformed JSON answer": Fault(
        lambda x: x.send(200, b'{"choices": [{"message": {"content": "cut'),
        ("malformed_response",),
        1,
    ),
    "huge HTML error page": Fault(
        lambda x: x.send(502, b"<html>" + b"Bad Gateway " * 200_000, content_type="text/html"),
        ("HTTP 502 server_error",),
        2,
    ),
    "connection dropped before answering": Fault(
        lambda x: x.drop(), ("2 attempts, last connection",), 2
    ),
    "connection dropped mid-answer": Fault(
        mid_stream_drop,
        ("broke off", "connection failed", "Hint: the answer above is incomplete"),
        1,
        stdout="Half an answer \n",
    ),
    "unknown error type mid-stream": Fault(
        # Classified as a server error, so retried once; never an unexpected crash.
        unknown_error_event,
        ("2 attempts, last server_error",),
        2,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_that_persists_exits_1_with_a_message_a_person_can_act_on(
    name: str, attune_home: Path, tmp_path: Path
) -> None:
    fault = FAULTS[name]
    # The plain run and the --json run side by side, each with its own home and server.
    homes = [attune_home, tmp_path / "json-home"]
    for home in homes:
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(fault.config)
    with LoopbackServer(fault.script) as plain, LoopbackServer(fault.script) as as_json:
        children = [
            start_attune(
                "ask",
                "hi",
                "-m",
                "gpt-5-mini",
                *flags,
                env={
                    **server.openai_env,
                    "OPENAI_API_KEY": FAKE_OPENAI_KEY,
                    "ATTUNE_HOME": str(home),
                },
            )
            for server, home, flags in ((plain, homes[0], []), (as_json, homes[1], ["--json"]))
        ]
        results = [
            subprocess.CompletedProcess(child.args, 0, *child.communicate(timeout=60))
            for child in children
        ]
        for child, result in zip(children, results, strict=True):
            result.returncode = child.returncode
        requests = len(plain.visits)
    result, json_result = results
    stderr = assert_clean_failure(result, 1)
    for expected in fault.stderr:
        assert expected in stderr, (expected, stderr)
    assert result.stdout == fault.stdout
    assert requests == fault.requests
    assert len(stderr) < 2000, "a provider's error page must not flood the terminal"
    assert FAKE_OPENAI_KEY not in stderr
    # With --json, stdout is still exactly one JSON document: the envelope of the failure.
    assert_clean_failure(json_result, 1)
    document = json.loads(json_result.stdout)
    assert document["success"] is False and document["error"]
    assert len(document["attempts"]) == fault.requests
    assert all(a["model"] == "gpt-5-mini" for a in document["attempts"])


def test_rate_limits_never_trip_the_breaker_but_outages_do(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\nmax_retries = 0\n")

    def by_model(exchange: Exchange) -> None:
        if exchange.model == "gpt-5-mini":
            exchange.error(429, "rate_limit_error", "slow down", retry_after_ms="10")
        else:
            exchange.error(503, "server_error", "down")

    with LoopbackServer(by_model) as server:
        # The first failure of each model in a process of its own, the rest in this process;
        # the calls that must be refused or let through below are processes again.
        for model in ("gpt-5-mini", "gpt-5"):
            for run in (attune, *[attune_in_process] * 5):
                assert_clean_failure(run("ask", "hi", "-m", model, env=server.openai_env), 1)
        refused = attune("ask", "hi", "-m", "gpt-5", env=server.openai_env)
        limited = attune("ask", "hi", "-m", "gpt-5-mini", env=server.openai_env)
        per_model = {m: sum(v.model == m for v in server.visits) for m in ("gpt-5-mini", "gpt-5")}
    assert "circuit open" in assert_clean_failure(refused, 1)
    assert "HTTP 429" in assert_clean_failure(limited, 1)
    assert per_model == {"gpt-5-mini": 7, "gpt-5": 5}  # 5 failures opened it; 429s never did
    breakers = {b["key"]: b for b in json.loads(attune("route", "breakers", "--json").stdout)}
    assert breakers["openai/gpt-5"]["state"] == "open"
    assert breakers.get("openai/gpt-5-mini", {"state": "closed"})["state"] == "closed"


def test_no_server_listening_fails_fast_and_each_attempt_is_recorded(attune_home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text(FAST)
    began = time.monotonic()
    result = attune(
        "ask", "hi", "-m", "gpt-5-mini", env={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    )
    stderr = assert_clean_failure(result, 1)
    # A refused connection is not retried: nothing behind that base URL can answer.
    assert "1 attempt, last connection" in stderr
    # Where nothing answered, and what to check.
    assert f"127.0.0.1:{port}/v1" in stderr
    assert "is the server running at that URL?" in stderr
    assert time.monotonic() - began < 10
    # The attempt rows say what happened, for `attune telemetry show` and the router.
    shown = json.loads(attune("telemetry", "show", "--json").stdout)
    assert [(c["error_kind"], c["status"]) for c in shown] == [("connection", None)]


def test_a_server_slower_than_the_deadline_is_abandoned_at_the_deadline(
    attune_home: Path,
) -> None:
    attune_home.mkdir(mode=0o700)
    (attune_home / "config.toml").write_text("[executor]\ndeadline_s = 1\n")
    release = threading.Event()

    def never_answers(exchange: Exchange) -> None:
        release.wait(30)

    with LoopbackServer(never_answers) as server:
        began = time.monotonic()
        result = attune("ask", "hi", "-m", "gpt-5-mini", env=server.openai_env)
        took_s = time.monotonic() - began
        release.set()
    stderr = assert_clean_failure(result, 1)
    assert "timeout" in stderr and "1 s deadline" in stderr, stderr
    assert took_s < 8, f"the 1 s deadline took {took_s:.1f} s"


def test_ctrl_c_during_a_slow_answer_exits_130_without_a_traceback(attune_home: Path) -> None:
    arrived = threading.Event()
    release = threading.Event()

    def slow(exchange: Exchange) -> None:
        arrived.set()
        release.wait(30)

    with LoopbackServer(slow) as server:
        child = start_attune("ask", "hi", "-m", "gpt-5-mini", env=server.openai_env)
        try:
            assert arrived.wait(30), "the request never arrived"
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            release.set()
            if child.poll() is None:
                child.kill()
                child.wait()
    assert child.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert out == ""
    # The interrupted call was not the provider's fault: it counts against nothing.
    breakers = json.loads(attune("route", "breakers", "--json").stdout)
    assert all(b["failures"] == 0 for b in breakers)
    shown = json.loads(attune("telemetry", "show", "--json").stdout)
    assert all(call["error_kind"] != "server_error" for call in shown)
