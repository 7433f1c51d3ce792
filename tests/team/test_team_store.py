"""The team store from the outside: real `attune` processes against a real PostgreSQL.

A server that goes away is simulated with a TCP proxy this test starts and stops on
127.0.0.1 (stopping the shared server would disturb every other test run on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.gateway import start_gateway

pytestmark = pytest.mark.e2e


def attune(
    home: Path, url: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTUNE_HOME": str(home), "ATTUNE_STORE_URL": url, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


class Proxy:
    """A TCP proxy on 127.0.0.1 to the real server that the test can stop and start."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener: socket.socket | None = None
        self.port = 0
        self.conns: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        assert self.listener is not None
        # shutdown wakes the thread blocked in accept(); close alone would not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.conns:
            # A pipe thread may have shut the socket down already: close it regardless.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns = []


@pytest.fixture
def proxy(pg_url: str) -> Iterator[Proxy]:
    from urllib.parse import urlsplit

    parts = urlsplit(pg_url)
    running = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    running.start()
    yield running
    with contextlib.suppress(AssertionError, OSError):
        running.stop()


def _via(url: str, port: int) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return url.replace(parts.netloc, f"{parts.username}@127.0.0.1:{port}", 1)


def test_server_down_mid_run_loses_no_row(tmp_path: Path, pg_url: str, proxy: Proxy) -> None:
    home = tmp_path / "laptop"
    url = _via(pg_url, proxy.port)
    record = ("telemetry", "record", "-w", "wf", "-s", "st", "-m", "m-a", "--success")
    for _ in range(3):
        attune(home, url, *record)
    assert count(pg_url) == 3
    proxy.stop()
    for _ in range(3):
        done = attune(home, url, *record)
        assert done.stderr.count("cannot be reached") == 1, done.stderr
        assert "local store" in done.stderr
    status = json.loads(attune(home, url, "store", "status", "--json").stdout)
    assert status["spooled_rows"] == 3
    proxy.start()
    attune(home, url, *record)  # reaches the server: the spool goes first
    assert count(pg_url) == 7
    assert json.loads(attune(home, url, "store", "status", "--json").stdout)["spooled_rows"] == 0
    again = attune(home, url, "store", "push")
    assert "0 new" in again.stderr
    assert count(pg_url) == 7
    assert attune(home, url, "store", "verify").returncode == 0


def test_kill_9_mid_push_leaves_no_duplicates(tmp_path: Path, pg_url: str) -> None:
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    home = tmp_path / "laptop"
    rows = [
        (
            1_700_000_000.0 + i,
            "wf",
            "st",
            "openai",
            "m-a",
            None,
            1,
            None,
            None,
            10.0 + i % 50,
            1,
            1,
            None,
            1,
            "recorded",
            "api",
            f"r{i:08x}",
        )
        for i in range(60_000)
    ]
    with TelemetryStore(home / "telemetry.db") as local, local.bulk_transaction():
        local.insert_rows(rows)
    env = {**os.environ, "ATTUNE_HOME": str(home), "ATTUNE_STORE_URL": pg_url}
    pushing = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", "store", "push"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pushing.poll() is None:
        try:
            if count(pg_url) > 0:
                break
        except Exception:
            pass
        time.sleep(0.02)
    pushing.send_signal(signal.SIGKILL)
    pushing.wait()
    attune(home, pg_url, "store", "push")
    assert count(pg_url) == 60_000
    assert "0 new" in attune(home, pg_url, "store", "push").stderr
    assert attune(home, pg_url, "store", "verify").returncode == 0


WRITER = """
import sys
from attune_cli.core.telemetry.postgres import PostgresCallStore
from attune_cli.core.telemetry.records import CallRecord
with PostgresCallStore(sys.argv[1]) as store:
    for i in range(int(sys.argv[2])):
        store.record(CallRecord("wf", "st", f"m-{i % 3}", i % 4 != 0, latency_ms=10.0 + i,
                                status=None if i % 4 else 503))
"""


def test_sixteen_writers_on_two_homes_lose_no_row(tmp_path: Path, pg_url: str) -> None:
    per_writer = 40
    procs = []
    for home in ("a", "b"):
        env = {**os.environ, "ATTUNE_HOME": str(tmp_path / home)}
        procs += [
            subprocess.Popen([sys.executable, "-c", WRITER, pg_url, str(per_writer)], env=env)
            for _ in range(8)
        ]
    assert [p.wait(timeout=120) for p in procs] == [0] * 16
    assert count(pg_url) == 16 * per_writer
    verified = attune(tmp_path / "a", pg_url, "store", "verify", "--json")
    assert json.loads(verified.stdout)["ok"] is True


def test_newer_schema_is_refused_with_exit_2_naming_the_database(
    tmp_path: Path, pg_url: str
) -> None:
    import psycopg

    secret = pg_url.replace("postgres@", "postgres:hunter2@", 1)
    attune(tmp_path, secret, "store", "migrate")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO attune_schema (version) VALUES (99)")
    done = attune(tmp_path, secret, "telemetry", "models", check=False)
    assert done.returncode == 2
    assert "newer attune" in done.stderr and "127.0.0.1" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_password_never_shown(tmp_path: Path, pg_url: str) -> None:
    secret = pg_url.replace("postgres@", "postgres:hunter2@", 1)
    shown = attune(tmp_path, secret, "store", "status", "--json")
    assert "hunter2" not in shown.stdout + shown.stderr
    assert "***" in json.loads(shown.stdout)["location"]


BREAKER = """
import sys, json
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.errors import BreakerOpenError
from attune_cli.core.breaker.postgres import PostgresBreaker
settings = BreakerSettings(open_base_s=float(sys.argv[3]), open_max_s=60, probe_lease_s=60)
breaker = PostgresBreaker(sys.argv[1], settings)
if sys.argv[2] == "trip":
    for _ in range(5):
        breaker.after_call(breaker.before_call("p/m"), failure=True)
    print(json.dumps([s.state for s in breaker.states()]))
else:
    try:
        permit = breaker.before_call("p/m")
        print("probe" if permit.probe else "closed")
    except BreakerOpenError:
        print("rejected")
"""


def test_breakers_shared_across_homes_one_probe_at_a_time(tmp_path: Path, pg_url: str) -> None:
    def run(home: str, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "ATTUNE_HOME": str(tmp_path / home)}
        return subprocess.Popen(
            [sys.executable, "-c", BREAKER, pg_url, *args],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    tripped = run("a", "trip", "30")
    assert json.loads(tripped.communicate(timeout=60)[0]) == ["open"]
    # The other home sees the open circuit at once.
    other = run("b", "ask", "30")
    assert other.communicate(timeout=60)[0].strip() == "rejected"
    # Once the open period is over: one half-open probe across both homes.
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE breakers SET open_until = 0")
    procs = [run(home, "ask", "30") for home in ("a", "b") for _ in range(4)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["probe"] + ["rejected"] * 7


def test_the_gateway_writes_to_the_team_store_and_keeps_rows_locally_while_it_is_down(
    tmp_path: Path, pg_url: str, proxy: Proxy
) -> None:
    import httpx

    from attune_cli.emulator import ProviderEmulator

    home = tmp_path / "gateway"
    url = _via(pg_url, proxy.port)
    with ProviderEmulator() as emulator:
        # The writer tries the server again every 0.2 s rather than 5 s: the test need not
        # wait out the default to see it reconnect.
        config = "[store]\nreconnect_s = 0.2\n"
        gateway = start_gateway(home, emulator, config, env={"ATTUNE_STORE_URL": url})
        base = gateway.url
        sent = 0

        def ask(client: httpx.Client) -> None:
            nonlocal sent
            body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            sent += 1

        def spooled() -> int:
            status = attune(home, url, "store", "status", "--json").stdout
            return int(json.loads(status)["spooled_rows"])

        def eventually(done: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 30
            while not done():
                assert time.monotonic() < deadline
                time.sleep(0.2)

        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                for _ in range(5):
                    ask(client)
                eventually(lambda: count(pg_url) == 5)
                assert spooled() == 0  # nothing went to the local store
                proxy.stop()
                for _ in range(4):
                    ask(client)  # answered all the same
                eventually(lambda: spooled() == 4)
                assert count(pg_url) == 5
                proxy.start()

                def caught_up() -> bool:
                    ask(client)  # the writer reconnects with a batch, then sends the rest
                    # The row of that call is written a moment later, by the writer thread.
                    written_by = time.monotonic() + 1
                    while count(pg_url) != sent:
                        if time.monotonic() > written_by:
                            return False
                        time.sleep(0.05)
                    return True

                eventually(caught_up)
            assert spooled() == 0
        finally:
            stderr = gateway.stop()
        assert stderr.count("cannot be reached") == 1, stderr
        assert stderr.count("telemetry write failed") <= 1, stderr  # once, not once a call
        assert "spooled call(s) to the team store" in stderr
        assert count(pg_url) == sent


def test_the_gateway_holds_a_few_team_store_connections_however_many_calls_are_in_flight(
    tmp_path: Path, pg_url: str
) -> None:
    import uuid

    import httpx
    import psycopg

    from attune_cli.emulator import Behaviour, ProviderEmulator

    # Every connection of the gateway carries this name: the server counts them.
    name = f"attune_t_gw_{uuid.uuid4().hex[:12]}"
    url = f"{pg_url}&application_name={name}"
    calls = 50
    statuses: list[int] = []

    def ask(base: str) -> None:
        body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=base, timeout=60) as client:
            statuses.append(client.post("/v1/chat/completions", json=body).status_code)

    def backends() -> int:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
            return int(found[0]) if found else 0

    # Each answer takes seconds: all fifty calls are in flight at once, on fifty threads.
    with ProviderEmulator(default=Behaviour.slow(3.0)) as emulator:
        gateway = start_gateway(tmp_path / "gateway", emulator, env={"ATTUNE_STORE_URL": url})
        try:
            threads = [threading.Thread(target=ask, args=(gateway.url,)) for _ in range(calls)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while emulator.requests_for() < calls:
                assert time.monotonic() < deadline, emulator.requests_for()
                time.sleep(0.05)
            in_flight = backends()
            for thread in threads:
                thread.join()
        finally:
            stderr = gateway.stop()
    assert statuses == [200] * calls, stderr
    assert "cannot be reached" not in stderr, stderr  # every call used the team store
    # Routing (one shared connection), breakers (one) and the writer (one), not a pair per
    # worker thread: fifty calls would take a hundred, PostgreSQL's default max_connections.
    assert 1 <= in_flight <= 4, in_flight
    assert count(pg_url) == calls  # every call is a row in the team store
