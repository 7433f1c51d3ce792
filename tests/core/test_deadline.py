"""Deadlines that hold on every socket operation, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from attune_cli.core.errors import ConfigError
from attune_cli.core.executor import Timeouts, make_client
from attune_cli.core.providers import ChatRequest, Endpoint, adapter_for
from attune_cli.core.providers.base import watching_attempts
from attune_cli.core.providers.deadline import (
    AttemptLimits,
    Budget,
    DeadlineBackend,
    DeadlineStream,
    budget_scope,
    current_budget,
    install,
)
from attune_cli.core.registry import load_registry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TricklingStream(httpcore.NetworkStream):
    """A server sending one byte per ``pace_s``; a read longer than its timeout times out."""

    def __init__(self, clock: Clock, pace_s: float) -> None:
        self.clock = clock
        self.pace_s = pace_s
        self.timeouts: list[float | None] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(timeout)
        if timeout is not None and timeout < self.pace_s:
            self.clock.now += timeout
            raise httpcore.ReadTimeout("timed out")
        self.clock.now += self.pace_s
        return b":"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)

    def close(self) -> None:
        pass


def budget(clock: Clock, total_s: float = 5.0, first_byte_s: float = 60, between_s: float = 60):
    limits = AttemptLimits(
        connect_s=10,
        first_byte_s=first_byte_s,
        between_reads_s=between_s,
        write_s=30,
        total_s=total_s,
    )
    return limits.budget(clock)


def test_a_trickling_server_is_cut_off_at_the_deadline_not_after_it() -> None:
    clock = Clock()
    inner = TricklingStream(clock, pace_s=0.5)
    stream = DeadlineStream(inner)
    started = clock.now
    with budget_scope(budget(clock, total_s=5.0)), pytest.raises(httpcore.ReadTimeout) as caught:
        while True:  # a keep-alive comment every half second, for ever
            stream.read(65536, timeout=60)
    assert clock.now - started == pytest.approx(5.0)
    assert "5 s" in str(caught.value) and "ran out" in str(caught.value)
    # Every read waited no longer than the time left, never the 60 s per-read timeout.
    assert all(t is not None and t <= 5.0 for t in inner.timeouts)


def test_a_silent_server_times_out_at_the_first_byte_limit_then_at_the_gap_limit() -> None:
    clock = Clock()
    inner = TricklingStream(clock, pace_s=1000)
    stream = DeadlineStream(inner)
    with budget_scope(budget(clock, total_s=300, first_byte_s=7, between_s=3)) as current:
        with pytest.raises(httpcore.ReadTimeout) as caught:
            stream.read(10, timeout=60)
        assert inner.timeouts[-1] == pytest.approx(7)
        assert "ran out" not in str(caught.value)  # a per-read timeout, not the deadline
        current.headers_arrived()
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, timeout=60)
        assert inner.timeouts[-1] == pytest.approx(3)


def test_once_the_deadline_passed_nothing_touches_the_socket() -> None:
    clock = Clock()
    inner = TricklingStream(clock, pace_s=0.1)
    stream = DeadlineStream(inner)
    with budget_scope(budget(clock, total_s=1)):
        clock.now += 1
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, timeout=60)
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"x", timeout=60)
    assert inner.timeouts == []


def test_without_a_budget_the_plain_timeouts_apply() -> None:
    clock = Clock()
    inner = TricklingStream(clock, pace_s=0.1)
    stream = DeadlineStream(inner)
    assert current_budget() is None
    stream.read(10, timeout=42)
    stream.write(b"x", timeout=None)
    assert inner.timeouts == [42, None]


def test_connecting_never_waits_past_the_deadline() -> None:
    clock = Clock()
    seen: dict[str, Any] = {}

    class Backend(httpcore.NetworkBackend):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, **_: Any):
            seen["timeout"] = timeout
            return TricklingStream(clock, 0.1)

    backend = DeadlineBackend(Backend())
    with budget_scope(budget(clock, total_s=2.5)):
        stream = backend.connect_tcp("127.0.0.1", 9, timeout=10)
        clock.now += 3
        with pytest.raises(httpcore.ConnectTimeout):
            backend.connect_tcp("127.0.0.1", 9, timeout=10)
    assert seen["timeout"] == pytest.approx(2.5)
    assert isinstance(stream, DeadlineStream)


def test_every_transport_of_the_shared_client_enforces_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy from the environment gets its own transport; it must hold the deadline too.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with make_client() as client:
        transports = [client._transport, *client._mounts.values()]
        assert len(transports) >= 2
        for transport in transports:
            assert isinstance(transport._pool._network_backend, DeadlineBackend)  # type: ignore[union-attr]
        assert install(client) is client  # idempotent: no backend wrapped twice
        backend = client._transport._pool._network_backend  # type: ignore[attr-defined]
        assert not isinstance(backend._inner, DeadlineBackend)


def test_a_client_made_without_cookies_never_sends_back_what_a_response_set() -> None:
    from helpers.reliability import Exchange, LoopbackServer

    seen: list[str | None] = []

    def script(exchange: Exchange) -> None:
        seen.append(exchange.headers.get("cookie"))
        exchange.send(200, {}, headers={"set-cookie": "__cf_bm=caller-one; Path=/"})

    with LoopbackServer(script) as server:
        with make_client() as keeping:
            keeping.post(f"{server.url}/v1/chat/completions", json={})
            keeping.post(f"{server.url}/v1/chat/completions", json={})
        with make_client(keep_cookies=False) as gateway:
            gateway.post(f"{server.url}/v1/chat/completions", json={})
            gateway.post(f"{server.url}/v1/chat/completions", json={})
            assert not gateway.cookies
    assert seen == [None, "__cf_bm=caller-one", None, None]


def test_install_refuses_a_transport_it_cannot_reach() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(RuntimeError, match="MockTransport"):
        install(client)


def test_timeouts_defaults_and_old_names(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    defaults = Timeouts.from_config({}, path)
    assert (defaults.connect_s, defaults.first_byte_s, defaults.read_s) == (10, 60, 60)
    # Before first_byte_timeout_s existed, read_timeout_s also bounded the wait for headers.
    old = Timeouts.from_config({"executor": {"read_timeout_s": 0.3}}, path)
    assert (old.first_byte_s, old.read_s) == (0.3, 0.3)
    both = Timeouts.from_config(
        {"executor": {"read_timeout_s": 5, "first_byte_timeout_s": 90}}, path
    )
    assert (both.first_byte_s, both.read_s) == (90, 5)
    limits = both.for_attempt(12.0)
    assert limits.httpx_timeout().read == 12.0  # capped by the time left
    assert limits.budget(Clock()).read_s == 90


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "soon"])
def test_an_invalid_first_byte_timeout_names_its_key(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match=r"executor\.first_byte_timeout_s"):
        Timeouts.from_config({"executor": {"first_byte_timeout_s": value}}, tmp_path / "c.toml")


def test_each_attempt_tells_the_watcher_which_model_it_waits_on() -> None:
    registry = load_registry({}, Path("config.toml"))
    endpoint = Endpoint(registry.providers["openai"], "http://127.0.0.1:9/v1", "sk-x", True)
    adapter = adapter_for(endpoint)
    body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)))
    seen: list[tuple[str, str]] = []
    with watching_attempts(lambda provider, model: seen.append((provider, model))):
        adapter.call(client, ChatRequest("gpt-5-mini", "hi"), stream=False)
    adapter.call(client, ChatRequest("gpt-5", "hi"), stream=False)
    assert seen == [("openai", "gpt-5-mini")]


def test_budget_left_and_expired() -> None:
    clock = Clock()
    current = Budget(ends_at=clock.now + 2, total_s=2, read_s=5, between_reads_s=1, clock=clock)
    assert current.wait_s(60, current.read_s) == 2
    clock.now += 1.5
    assert current.wait_s(None) == pytest.approx(0.5)
    assert not current.expired()
    clock.now += 0.5
    assert current.expired()
