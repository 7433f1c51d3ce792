"""`attune serve` as a real process, driven by the official openai and anthropic SDKs.

The gateway runs on 127.0.0.1 (``--port 0``) in front of the provider emulator; telemetry is
read back with ``attune telemetry show --json``, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.gateway import (
    CLIENT_KEY,
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_OPENAI_KEY,
    Gateway,
    start_gateway,
)

from attune_cli.emulator import Behaviour, Drop, Fail, ProviderEmulator, Reply

# The SDKs (openai, anthropic) are imported by the tests that raise their errors and by
# ``Gateway``'s client factories: they take about a second of CPU, which a pytest worker that
# runs none of these tests should not pay at collection.

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator() -> Iterator[ProviderEmulator]:
    with ProviderEmulator() as running:
        yield running


@pytest.fixture
def gateway(attune_home: Path, emulator: ProviderEmulator) -> Iterator[Gateway]:
    running = start_gateway(attune_home, emulator, "[executor]\nmax_retries = 0\n")
    yield running
    running.stop()


def test_openai_sdk_gets_answers_streamed_and_not_from_the_model_that_answered(
    gateway: Gateway,
) -> None:
    client = gateway.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="attune/ci/triage",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    )
    completion = raw.parse()
    chosen = completion.model
    assert chosen != "attune/ci/triage" and chosen in completion.choices[0].message.content
    assert raw.headers["x-attune-model"] == chosen
    assert raw.headers["x-attune-fallback"] == "false"

    stream = client.chat.completions.create(
        model="gpt-5-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Attune-Workflow": "docs", "X-Attune-Stage": "draft"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from gpt-5-mini on the attune emulator."
    assert all(c.model == "gpt-5-mini" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    rows = gateway.rows()
    assert [(r["workflow"], r["stage"], r["model"], r["success"]) for r in rows] == [
        ("ci", "triage", chosen, True),
        ("docs", "draft", "gpt-5-mini", True),
    ]
    upstream = gateway.emulator.requests
    assert upstream[1].body["messages"] == [{"role": "user", "content": "hi"}]
    assert {"role": "system", "content": "be brief"} in upstream[0].body.get("messages", []) or (
        upstream[0].body.get("system") == "be brief"
    )


def test_anthropic_sdk_gets_answers_streamed_and_not(gateway: Gateway) -> None:
    client = gateway.anthropic()
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        system="be brief",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "again"}]},
        ],
    )
    assert message.model == "claude-haiku-4-5"
    assert message.content[0].text == "Hello from claude-haiku-4-5 on the attune emulator."
    sent = gateway.emulator.requests[0].body
    assert sent["system"] == "be brief" and len(sent["messages"]) == 3

    with client.messages.stream(
        model="attune/review/analysis", max_tokens=64, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 3 and "".join(pieces) == final.content[0].text
    assert final.model != "attune/review/analysis"
    assert [r["workflow"] for r in gateway.rows()] == ["gateway", "review"]


def test_sdk_retry_on_429_honours_the_gateways_retry_after(gateway: Gateway) -> None:
    import anthropic

    gateway.emulator.set_behaviour(
        "gpt-5-mini", Behaviour.script(Fail(429, retry_after="1"), then=Reply("ok now"))
    )
    client = gateway.openai(max_retries=2)
    began = time.monotonic()
    completion = client.chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "ok now"
    assert time.monotonic() - began >= 0.9  # the SDK waited as the gateway said
    assert gateway.emulator.requests_for("gpt-5-mini") == 2
    rows = gateway.rows()
    assert [(r["status"], r["failure_class"]) for r in rows] == [(429, "rate_limit"), (200, None)]

    gateway.emulator.set_behaviour("claude-haiku-4-5", Behaviour.failing(429, retry_after="7"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        gateway.anthropic(max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_upstream_500s_and_an_open_circuit_reach_the_sdk_as_its_own_errors(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    import openai

    config = "[executor]\nmax_retries = 0\n[breaker]\nconsecutive_failures = 2\nmin_calls = 2\n"
    gateway = start_gateway(attune_home, emulator, config)
    try:
        emulator.set_behaviour("gpt-5-mini", Behaviour.failing(500))
        client = gateway.openai(max_retries=0)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(
                    model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
                )
            assert caught.value.status_code == 500
        with pytest.raises(openai.APIStatusError) as opened:
            client.chat.completions.create(
                model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert opened.value.status_code == 503
        assert int(opened.value.response.headers["retry-after"]) >= 1
        assert "circuit open" in opened.value.message
        assert emulator.requests_for("gpt-5-mini") == 2  # the open circuit sent nothing
    finally:
        gateway.stop()


def test_a_connection_dropped_mid_stream_is_a_clean_sdk_error_and_its_row_says_so(
    gateway: Gateway,
) -> None:
    import openai

    gateway.emulator.set_behaviour("gpt-5-mini", Behaviour.script(Drop(after_chunks=2)))
    stream = gateway.openai(max_retries=0).chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello from "
    assert "broke off" in str(caught.value)
    [row] = gateway.rows()
    assert (row["success"], row["error_kind"], row["failure_class"]) == (
        False,
        "connection",
        "outage",
    )


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_call_recorded_as_cancelled(
    gateway: Gateway,
) -> None:
    slow = Reply(" ".join(["word"] * 40), chunk_delay_s=0.25)  # ~10 s to the end
    gateway.emulator.set_behaviour("gpt-5-mini", Behaviour(then=slow))
    body = {"model": "gpt-5-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{gateway.url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if "word" in line:
                break
    deadline = time.monotonic() + 20
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        time.sleep(0.2)
        rows = gateway.rows()
    [row] = rows
    assert (row["error_kind"], row["failure_class"], row["success"]) == (
        "cancelled",
        "cancelled",
        False,
    )
    assert float(row["latency_ms"]) < 7000  # type: ignore[arg-type]  # abandoned, not read out
    breakers = subprocess.run(
        [sys.executable, "-m", "attune_cli", "route", "breakers", "--json"],
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert all(b["failures"] == 0 for b in json.loads(breakers.stdout))


def test_bodies_that_are_not_json_or_too_large_get_an_error_in_the_callers_shape(
    gateway: Gateway,
) -> None:
    with httpx.Client(timeout=30) as client:
        openai_bad = client.post(
            f"{gateway.url}/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        anthropic_bad = client.post(f"{gateway.url}/v1/messages", content=b"[1, 2]")
        huge = b'{"model": "gpt-5-mini", "messages": [], "pad": "' + b"x" * (5 * 2**20) + b'"}'
        too_large = client.post(f"{gateway.url}/v1/messages", content=huge)
        no_messages = client.post(
            f"{gateway.url}/v1/chat/completions", json={"model": "gpt-5-mini"}
        )
    assert openai_bad.status_code == 400
    assert openai_bad.json()["error"]["type"] == "invalid_request_error"
    assert anthropic_bad.status_code == 400
    assert anthropic_bad.json()["type"] == "error"
    assert anthropic_bad.json()["error"]["type"] == "invalid_request_error"
    assert too_large.status_code == 400
    assert too_large.json()["error"]["type"] == "invalid_request_error"
    assert "over 4 MiB" in too_large.json()["error"]["message"]
    assert no_messages.status_code == 400 and "messages" in no_messages.json()["error"]["message"]
    assert gateway.emulator.requests_for() == 0
    assert gateway.rows() == []


def test_the_clients_key_reaches_neither_the_provider_nor_telemetry_nor_the_log(
    gateway: Gateway,
) -> None:
    gateway.openai().chat.completions.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
    )
    gateway.anthropic().messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    forwarded = [json.dumps(dict(r.headers)) for r in gateway.emulator.requests]
    assert all(CLIENT_KEY not in h for h in forwarded)
    assert UPSTREAM_OPENAI_KEY in forwarded[0] and UPSTREAM_ANTHROPIC_KEY in forwarded[1]
    assert len(gateway.rows()) == 2
    log = gateway.stop()
    for path in gateway.home.rglob("*"):
        if path.is_file():
            assert CLIENT_KEY.encode() not in path.read_bytes(), path
    assert CLIENT_KEY not in log


def test_sigterm_lets_a_call_in_flight_finish_and_record_its_row(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour.slow(1.5, "made it"))
    gateway = start_gateway(attune_home, emulator)
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            completion = gateway.openai(max_retries=0).chat.completions.create(
                model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
            )
            outcome["text"] = completion.choices[0].message.content
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 20
    while emulator.requests_for("gpt-5-mini") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        gateway.process.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        gateway.process.wait(timeout=30)
        assert outcome == {"text": "made it"}
        [row] = gateway.rows()
        assert (row["model"], row["success"]) == ("gpt-5-mini", True)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gateway.url}/v1/models", timeout=5)
    finally:
        gateway.stop()


def test_sigterm_with_many_calls_in_flight_writes_a_row_for_every_one(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    # Rows are queued to the gateway's one telemetry writer; shutdown must write them all.
    emulator.set_behaviour("gpt-5-mini", Behaviour.slow(1.0, "made it"))
    gateway = start_gateway(attune_home, emulator, "[executor]\nmax_retries = 0\n")
    answers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            completion = gateway.openai(max_retries=0).chat.completions.create(
                model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}]
            )
            with lock:
                answers.append(completion.choices[0].message.content or "")
        except Exception as exc:  # reported by the assertion below
            with lock:
                errors.append(exc)

    callers = [threading.Thread(target=call) for _ in range(20)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 30
    while emulator.requests_for("gpt-5-mini") < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        gateway.process.send_signal(signal.SIGTERM)
        for caller in callers:
            caller.join(timeout=30)
        gateway.process.wait(timeout=30)
        assert errors == []
        assert answers == ["made it"] * 20
        rows = gateway.rows()
        assert len(rows) == 20
        assert all(row["success"] is True and row["model"] == "gpt-5-mini" for row in rows)
    finally:
        gateway.stop()


def test_llm_cli_through_its_openai_compatible_model_config_gets_answers_and_rows(
    gateway: Gateway, tmp_path: Path
) -> None:
    # simonw/llm, configured as its docs say for an OpenAI-compatible server: a model in
    # extra-openai-models.yaml whose api_base is the gateway (llm sends no OpenAI key then).
    user_dir = tmp_path / "llm-user"
    user_dir.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        "- model_id: attune-notes\n"
        "  model_name: gpt-5-mini\n"
        f"  api_base: {gateway.url}/v1\n"
        "  headers:\n"
        "    X-Attune-Workflow: notes\n"
        "    X-Attune-Stage: summary\n"
        "- model_id: attune-routed\n"
        "  model_name: attune/ci/triage\n"
        f"  api_base: {gateway.url}/v1\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LLM_USER_PATH": str(user_dir)}
    env.pop("OPENAI_API_KEY", None)

    def llm(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "llm", "prompt", "--no-log", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    streamed = llm("-m", "attune-notes", "hi")
    whole = llm("-m", "attune-notes", "--no-stream", "-s", "be brief", "hi")
    routed = llm("-m", "attune-routed", "--no-stream", "hi")
    assert streamed == whole == "Hello from gpt-5-mini on the attune emulator."
    assert routed.startswith("Hello from ") and routed.endswith(" on the attune emulator.")
    chosen = routed.removeprefix("Hello from ").removesuffix(" on the attune emulator.")
    rows = gateway.rows()
    assert [(r["workflow"], r["stage"], r["model"], r["success"]) for r in rows] == [
        ("notes", "summary", "gpt-5-mini", True),
        ("notes", "summary", "gpt-5-mini", True),
        ("ci", "triage", chosen, True),
    ]
    assert gateway.emulator.requests[1].body["messages"][0] == {
        "role": "system",
        "content": "be brief",
    }


def test_models_lists_the_registry_and_the_routing_aliases_of_recorded_stages(
    gateway: Gateway,
) -> None:
    gateway.openai().chat.completions.create(
        model="attune/ci/triage", messages=[{"role": "user", "content": "hi"}]
    )
    ids = [m.id for m in gateway.openai().models.list()]
    assert "gpt-5-mini" in ids and "claude-haiku-4-5" in ids
    assert "attune/ci/triage" in ids


def test_serve_token_is_stored_private_and_printed_the_same_each_time(attune_home: Path) -> None:
    def token() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "attune_cli", "serve", "token"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first = token()
    assert first.startswith("attune-") and len(first) > 30
    assert token() == first
    assert (attune_home / "serve-token").stat().st_mode & 0o777 == 0o600
