"""Fixtures shared by every test: an isolated ATTUNE_HOME and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

PROVIDER_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "ATTUNE_DEBUG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)


@pytest.fixture(autouse=True)
def attune_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs against its own empty attune home and no provider keys."""
    home = tmp_path / "attune-home"
    monkeypatch.setenv("ATTUNE_HOME", str(home))
    monkeypatch.setenv("ATTUNE_LEGACY_HOME", str(tmp_path / "legacy-attune"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


# --- PostgreSQL (the team store) ------------------------------------------------------------
# ``.ci/run`` starts the server and exports ATTUNE_TEST_PG_URL; elsewhere the default local
# server is tried. Without one, PostgreSQL tests skip with one line; under CI=true a skipped
# PostgreSQL test fails the run (``pytest_runtest_makereport`` below).

PG_SKIP_PREFIX = "PostgreSQL unavailable"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The test server's URL, or a skip naming why there is none."""
    import os

    url = os.environ.get("ATTUNE_TEST_PG_URL") or DEFAULT_PG_URL
    try:
        import psycopg
    except ImportError:
        pytest.skip(f"{PG_SKIP_PREFIX}: psycopg is not installed (pip install -e '.[postgres]')")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"{PG_SKIP_PREFIX}: {str(exc).splitlines()[0]}")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> object:
    """A URL whose search_path is a schema of this test's own, dropped afterwards."""
    import uuid

    import psycopg

    schema = f"attune_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in pg_server_url else "?"
    yield f"{pg_server_url}{joiner}options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Under CI=true a PostgreSQL test must run: its skip is turned into a failure."""
    import os

    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if PG_SKIP_PREFIX in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true and a PostgreSQL test was skipped: {reason}"


# --- Claude Code (the subscription path) ----------------------------------------------------
# A stand-in `claude` that behaves as the documented print mode does (`claude -p` with
# `--output-format stream-json|json`): text events, then the result object. What it does is
# chosen by FAKE_CLAUDE_SCENARIO; what it received (argv, environment, stdin) is appended to
# FAKE_CLAUDE_LOG as one JSON line per run, so tests assert on what attune sends.

FAKE_CLAUDE = r"""#!{python}
import json, os, sys, time

args = sys.argv[1:]
if args == ["--version"]:
    if os.environ.get("FAKE_CLAUDE_LOG"):
        with open(os.environ["FAKE_CLAUDE_LOG"] + ".versions", "a") as handle:
            handle.write("asked\n")
    print("2.0.14 (Claude Code)")
    sys.exit(0)
prompt = sys.stdin.read()
log = os.environ.get("FAKE_CLAUDE_LOG")
if log:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({{"argv": args, "env": dict(os.environ), "stdin": prompt,
                                  "pid": os.getpid()}}) + "\n")
scenario = os.environ.get("FAKE_CLAUDE_SCENARIO", "ok")
fmt = args[args.index("--output-format") + 1] if "--output-format" in args else "text"
model = args[args.index("--model") + 1] if "--model" in args else "default"
answer = os.environ.get("FAKE_CLAUDE_ANSWER", "Hello from the plan.")

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

def result(text, *, is_error=False, subtype="success"):
    return {{"type": "result", "subtype": subtype, "is_error": is_error, "result": text,
            "duration_ms": 1234, "duration_api_ms": 1100, "num_turns": 1,
            "session_id": "5e551011-0000-4000-8000-000000000001", "total_cost_usd": 0.0123,
            "usage": {{"input_tokens": 12, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 8, "output_tokens": 7}}}}

def finish(obj, code=0):
    if fmt == "stream-json":
        emit(obj)
    else:
        sys.stdout.write(json.dumps(obj))
        sys.stdout.flush()
    sys.exit(code)

if fmt == "stream-json":
    emit({{"type": "system", "subtype": "init", "model": model, "session_id": "x"}})
if scenario == "ok":
    if fmt == "stream-json":
        for piece in (answer[:6], answer[6:]):
            emit({{"type": "stream_event", "event": {{"type": "content_block_delta", "index": 0,
                  "delta": {{"type": "text_delta", "text": piece}}}}}})
        block = {{"type": "text", "text": answer}}
        emit({{"type": "assistant", "message": {{"content": [block]}}}})
    finish(result(answer))
if scenario == "error":
    finish(result("Something went wrong while running", is_error=True,
                  subtype="error_during_execution"), 1)
if scenario == "usage_limit":
    reset = os.environ.get("FAKE_CLAUDE_RESET", str(int(time.time()) + 7200))
    finish(result(f"Claude AI usage limit reached|{{reset}}", is_error=True), 1)
if scenario == "usage_limit_clock":
    finish(result("5-hour limit reached \u2219 resets 3pm (UTC)", is_error=True), 1)
if scenario == "login":
    finish(result("Invalid API key \u00b7 Please run /login", is_error=True), 1)
if scenario == "hang":
    pidfile = os.environ.get("FAKE_CLAUDE_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as handle:
            handle.write(str(os.getpid()))
    time.sleep(600)
if scenario == "linger":
    pidfile = os.environ.get("FAKE_CLAUDE_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as handle:
            handle.write(str(os.getpid()))
    emit(result(answer))
    time.sleep(600)
if scenario == "slow":
    pidfile = os.environ.get("FAKE_CLAUDE_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as handle:
            handle.write(str(os.getpid()))
    emit({{"type": "stream_event", "event": {{"type": "content_block_delta", "index": 0,
          "delta": {{"type": "text_delta", "text": "Thinking"}}}}}})
    time.sleep(600)
if scenario == "crash":
    emit({{"type": "stream_event", "event": {{"type": "content_block_delta", "index": 0,
          "delta": {{"type": "text_delta", "text": "Half an ans"}}}}}})
    sys.stderr.write("FATAL: the process ran out of memory\n")
    sys.stderr.flush()
    os._exit(3)
sys.exit(9)
"""


class FakeClaude:
    """A stand-in ``claude`` first on PATH; ``runs()`` reads back what each run received."""

    def __init__(self, folder: Path) -> None:
        import os
        import stat
        import sys

        self.bin = folder / "fake-claude-bin"
        self.bin.mkdir()
        self.path = self.bin / "claude"
        self.path.write_text(FAKE_CLAUDE.format(python=sys.executable), encoding="utf-8")
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        self.log = folder / "fake-claude.jsonl"
        self.pidfile = folder / "fake-claude.pid"
        self.env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_CLAUDE_LOG": str(self.log),
            "FAKE_CLAUDE_PIDFILE": str(self.pidfile),
        }

    def version_asked(self) -> int:
        """How many times ``claude --version`` ran."""
        versions = self.log.with_name(self.log.name + ".versions")
        return len(versions.read_text().splitlines()) if versions.exists() else 0

    def runs(self) -> list[dict[str, object]]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """A stand-in ``claude`` (see ``FAKE_CLAUDE``) first on this test's PATH."""
    fake = FakeClaude(tmp_path)
    for name, value in fake.env.items():
        monkeypatch.setenv(name, value)
    return fake
