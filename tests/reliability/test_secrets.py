"""Secrets: a key attune holds never appears anywhere but in credentials.toml.

Every command runs with known fake keys in the environment and in ``credentials.toml``,
including failing calls against a server that echoes the key it received back in its error
bodies, and again with ``ATTUNE_DEBUG=1`` (tracebacks on). Then stdout, stderr, every byte of
``telemetry.db`` (and its WAL), every exported file and every other file in the home are
scanned: zero occurrences of any key. File modes are checked as a person's ``ls -l`` would
show them, under a permissive umask too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.reliability import (
    FAKE_ANTHROPIC_KEY,
    FAKE_OPENAI_KEY,
    Exchange,
    LoopbackServer,
    answer_events,
    attune,
)

from attune_cli.core.ask import AskOptions, ask
from attune_cli.core.errors import AttuneError
from attune_cli.core.executor import failure_error
from attune_cli.core.paths import resolve_paths
from attune_cli.core.workspace import Workspace

pytestmark = pytest.mark.e2e

STORED_ANTHROPIC_KEY = FAKE_ANTHROPIC_KEY.replace("FAKE", "STORED")
ALL_KEYS = (FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, STORED_ANTHROPIC_KEY)


KEYS_SENT: set[str] = set()


def echo_the_key(exchange: Exchange) -> None:
    """Behaves by prompt; every failure quotes the key the request carried."""
    sent = exchange.headers.get("x-api-key") or exchange.headers.get("authorization", "")
    sent = sent.removeprefix("Bearer ")
    KEYS_SENT.add(sent)
    prompt = exchange.prompt
    if prompt == "auth":
        exchange.error(401, "authentication_error", f"invalid x-api-key: {sent}")
    elif prompt == "boom":
        exchange.error(500, "api_error", f"internal error for key {sent}", retry_after_ms="1")
    elif prompt == "html":
        exchange.send(
            502, f"<html><pre>Authorization: {sent}</pre></html>", content_type="text/html"
        )
    elif prompt == "stream" and exchange.stream:
        exchange.begin_stream()
        for event in answer_events(exchange.api, "partial answer")[:2]:
            exchange.chunk(event)
        error = {"type": "error", "error": {"type": "overloaded_error", "message": sent}}
        if exchange.api == "openai":
            error = {"error": {"type": "server_error", "message": sent, "code": None}}
        exchange.chunk(f"event: error\ndata: {json.dumps(error)}\n\n")
        exchange.end_stream()
    elif prompt == "garbage":
        exchange.send(200, f"{{not json {sent}")
    else:
        exchange.answer(f"fine, and your key is safe ({sent[:6]}…)")


def scan(text: str | bytes, where: str, found: list[str]) -> None:
    raw = text.encode() if isinstance(text, str) else text
    for key in ALL_KEYS:
        if key.encode() in raw:
            found.append(f"{where}: {key[:12]}…")


# --- every command, in cases xdist can spread ----------------------------------------------
# Each case runs a few commands (with ATTUNE_DEBUG=1 too where it says so) in a home of its own
# that holds stored keys (``auth login``/``auth setup`` once per worker, copied) and, for the
# cases that read history, calls that failed with the key echoed back (recorded once per
# worker through the same ``ask`` the command runs). Then stdout, stderr, every file of the
# home but credentials.toml and every exported file are scanned: zero occurrences of any key.

# The breaker stays closed and nothing is retried, so every failing ask reaches the server.
CONFIG = "[executor]\nmax_retries = 0\n\n[breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n"
PROMPTS = ("ok", "auth", "boom", "html", "stream", "garbage")
REPORTS = {
    "telemetry": (("telemetry", "show"), ("telemetry", "models")),
    "route-choice": (("route", "explain", "general"), ("route", "best", "general")),
    "route-state": (("route", "stats"), ("route", "check"), ("route", "breakers")),
}


@dataclass(frozen=True)
class Run:
    """One command of a case: its arguments, stdin, extra environment, ATTUNE_DEBUG=1."""

    args: tuple[str, ...]
    stdin: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    debug: bool = False


def run(*args: str, stdin: str | None = None, debug: bool = False, **env: str) -> Run:
    return Run(args, stdin, tuple(env.items()), debug)


def _cases() -> dict[str, tuple[str, list[Run], set[str]]]:
    """id: (the home it starts from, its commands, the keys its requests must carry)."""
    cases: dict[str, tuple[str, list[Run], set[str]]] = {
        "help-version-login-setup": (
            "empty",
            [
                run("--help"),
                run("--version"),
                run("auth", "login", "anthropic", "--with-key-stdin", stdin=STORED_ANTHROPIC_KEY),
                run(
                    *("auth", "setup", "--tier", "max", "--mode", "auto", "--provider", "openai"),
                    *("--with-key-stdin", "--yes"),
                    stdin=FAKE_OPENAI_KEY,
                ),
            ],
            set(),
        ),
        "ask-anthropic-env-key": (
            "keyed",
            [run("ask", p, "-m", "claude-haiku-4-5") for p in PROMPTS],
            {FAKE_ANTHROPIC_KEY},
        ),
        "ask-openai-stored-key-json": (
            "keyed",
            [run("ask", p, "-m", "gpt-5-mini", "--json") for p in PROMPTS],
            {FAKE_OPENAI_KEY},
        ),
        "ask-anthropic-stored-key": (
            "keyed",
            [run("ask", p, "-m", "claude-haiku-4-5", ANTHROPIC_API_KEY="") for p in PROMPTS],
            {STORED_ANTHROPIC_KEY},
        ),
        "ask-anthropic-env-key-debug": (
            "keyed",
            [run("ask", p, "-m", "claude-haiku-4-5", debug=True) for p in PROMPTS],
            {FAKE_ANTHROPIC_KEY},
        ),
        "reset-commands": (
            "history",
            [
                run("route", "breakers", "reset"),
                run("telemetry", "prune", "--older-than", "3650", "--yes"),
                run("auth", "reset", "--yes"),
            ],
            set(),
        ),
    }
    for debug in (False, True):
        tag = "-debug" if debug else ""
        json_flag = ("--json",) if debug else ()
        cases[f"auth-status-recommend{tag}"] = (
            "keyed",
            [
                run("auth", "status", *json_flag, debug=debug),
                run("auth", "recommend", "{source}", *json_flag, debug=debug),
            ],
            set(),
        )
        cases[f"usage-errors-and-tier-routing{tag}"] = (
            "keyed",
            [
                run("ask", "boom", "--tier", "cheap", "--json", debug=debug),
                run("ask", "ok", "--max-tokens", "0", debug=debug),  # a usage error
                run("auth", "login", "nobody", "--with-key-stdin", stdin="sk-x", debug=debug),
                run(
                    "auth", "login", "openai", "--with-key-stdin", stdin="has a space", debug=debug
                ),
                run("telemetry", "record", "-w", "w", "-s", "s", "-m", "gpt-5", "--failure"),
            ],
            set(),
        )
        cases[f"telemetry-import{tag}"] = (
            "keyed",
            [
                run("telemetry", "import", "{history}", "--json", debug=debug),
                run("telemetry", "import", "{history}", "--skip-bad", debug=debug),
            ],
            set(),
        )
        for group, commands in REPORTS.items():
            cases[f"{group}-reports{tag}"] = (
                "history",
                [run(*command, *json_flag, debug=debug) for command in commands],
                set(),
            )
        cases[f"exports{tag}"] = (
            "history",
            [
                run("telemetry", "export", "--format", fmt, *target, debug=debug and not target)
                for fmt in ("jsonl", "csv")
                for target in (("--output", "{export}." + fmt), ())
            ],
            set(),
        )
    return cases


CASES = _cases()
_TEMPLATES: dict[str, Path] = {}


def _server_env(server: LoopbackServer) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": server.url,
        "OPENAI_BASE_URL": f"{server.url}/v1",
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
    }


def _template(kind: str, factory: pytest.TempPathFactory) -> Path:
    """A home holding stored keys (``keyed``), and calls failed with echoed keys (``history``).

    Built once per worker, by the commands themselves (``keyed``) and by the ``ask`` they run
    (``history``); every case copies it.
    """
    if kind in _TEMPLATES:
        return _TEMPLATES[kind]
    home = factory.mktemp(f"secrets-{kind}") / "home"
    if kind == "keyed":
        home.mkdir(mode=0o700)
        (home / "config.toml").write_text(CONFIG)
        with LoopbackServer(echo_the_key) as server:
            env = {**_server_env(server), "ATTUNE_HOME": str(home)}
            for command in CASES["help-version-login-setup"][1][2:]:
                done = attune(*command.args, env=env, stdin=command.stdin)
                assert done.returncode == 0, done.stderr
    else:
        shutil.copytree(_template("keyed", factory), home)
        with LoopbackServer(echo_the_key) as server:
            environ = _server_env(server)
            workspace = Workspace.load(resolve_paths({"ATTUNE_HOME": str(home)}))
            for prompt in PROMPTS:
                for model, extra in (
                    ("claude-haiku-4-5", {}),
                    ("gpt-5-mini", {}),
                    ("claude-haiku-4-5", {"ANTHROPIC_API_KEY": ""}),
                ):
                    with contextlib.suppress(AttuneError):
                        ask(
                            workspace, AskOptions(prompt, model=model), environ={**environ, **extra}
                        )
            assert len(server.visits) >= len(PROMPTS) * 3
    _TEMPLATES[kind] = home
    return home


@pytest.mark.parametrize("case", list(CASES))
def test_no_command_prints_stores_or_exports_a_key(
    case: str, attune_home: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    found: list[str] = []
    scan(f"…{FAKE_OPENAI_KEY}…", "self-check", found)
    assert found == ["self-check: sk-proj-FAKE…"]
    found.clear()
    KEYS_SENT.clear()
    start, runs, keys_expected = CASES[case]
    if start == "empty":
        attune_home.mkdir(mode=0o700)
        (attune_home / "config.toml").write_text(CONFIG)
    else:
        shutil.copytree(_template(start, tmp_path_factory), attune_home)

    source = tmp_path / "module.py"
    source.write_text("def f():\n    return 1\n" * 200)
    history = tmp_path / "history.jsonl"
    history.write_text(
        json.dumps({"ts": "2026-01-07T07:30:45.123Z", "model": "gpt-5-mini", "success": True})
        + "\n{broken\n"
    )
    places = {"source": str(source), "history": str(history), "export": str(tmp_path / "export")}
    asks = 0
    with LoopbackServer(echo_the_key) as server:
        for command in runs:
            args = tuple(arg.format(**places) for arg in command.args)
            env = {**_server_env(server), **dict(command.env)}
            if command.debug:
                env["ATTUNE_DEBUG"] = "1"
            result = attune(*args, env=env, stdin=command.stdin)
            scan(result.stdout, f"stdout of {args}", found)
            scan(result.stderr, f"stderr of {args}", found)
            asks += args[0] == "ask" and "--max-tokens" not in args
        requests = len(server.visits)

    exports = sorted(tmp_path.glob("export.*"))
    if case.startswith("exports"):
        assert [e.suffix for e in exports] == [".csv", ".jsonl"]
    for exported in exports:
        assert exported.stat().st_size > 0
        scan(exported.read_bytes(), f"export {exported.name}", found)
    for path in sorted(attune_home.rglob("*")):
        if path.is_file() and path.name != "credentials.toml":
            scan(path.read_bytes(), f"file {path.name}", found)
    assert found == [], found
    # Every ask reached the server (nothing was echoed otherwise), with the key it should use.
    assert requests >= asks, "the calls did not reach the server: nothing was echoed"
    assert keys_expected <= KEYS_SENT, f"{case}: the key was not sent, so not echoed back"


def test_exception_texts_and_tracebacks_never_hold_a_key(attune_home: Path) -> None:
    """The errors core raises for failed calls, as a program embedding attune would see them."""
    found: list[str] = []
    with LoopbackServer(echo_the_key) as server:
        environ = {
            "ANTHROPIC_BASE_URL": server.url,
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        }
        workspace = Workspace.load()
        checked = 0
        for prompt in ("auth", "boom", "html", "stream", "garbage"):
            for model in ("claude-haiku-4-5", "gpt-5-mini", None):
                options = AskOptions(
                    prompt=prompt, model=model, tier="cheap" if not model else None
                )
                try:
                    response = ask(workspace, options, environ=environ)
                    assert not response.success
                    raise failure_error(response)
                except AttuneError as exc:
                    checked += 1
                    text = "".join(traceback.format_exception(exc))
                    scan(text + repr(exc) + (exc.hint or ""), f"{prompt}/{model}", found)
                    scan(json.dumps(response.to_dict()), f"envelope {prompt}/{model}", found)
    assert found == [], found
    assert checked == 15


def modes(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("layout", ["ATTUNE_HOME", "XDG"])
def test_secret_files_are_private_even_under_a_permissive_umask(
    layout: str, attune_home: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATTUNE_HOME"}
    if layout == "XDG":
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
        config_dir = tmp_path / "xdg-config" / "attune"
        data_dir = tmp_path / "xdg-data" / "attune"
    else:
        env["ATTUNE_HOME"] = str(attune_home)
        config_dir = data_dir = attune_home

    def run(*args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "attune_cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: os.umask(0),  # the worst umask a person can have
        )
        assert result.returncode == 0, result.stderr

    run("auth", "login", "openai", "--with-key-stdin", stdin=FAKE_OPENAI_KEY)
    run("auth", "setup", "--tier", "pro", "--mode", "api", "--yes")
    run("telemetry", "record", "-w", "w", "-s", "s", "-m", "gpt-5-mini", "--success")
    run("auth", "login", "anthropic", "--with-key-stdin", stdin=FAKE_ANTHROPIC_KEY)

    assert modes(config_dir) == 0o700
    assert modes(data_dir) == 0o700
    assert modes(config_dir / "credentials.toml") == 0o600
    assert modes(data_dir / "telemetry.db") == 0o600
    for sidecar in ("telemetry.db-wal", "telemetry.db-shm"):
        if (data_dir / sidecar).exists():
            assert modes(data_dir / sidecar) == 0o600, sidecar
    for lock in config_dir.glob(".*.lock"):
        assert modes(lock) & 0o077 == 0, lock.name
    # Only the key file holds a key; config.toml may be shared, but never holds one.
    config_text = (config_dir / "config.toml").read_text()
    assert FAKE_OPENAI_KEY not in config_text and FAKE_ANTHROPIC_KEY not in config_text


def longest_run_of(key: str, text: str) -> int:
    """The longest stretch of ``key`` that appears in ``text``."""
    longest = 0
    for start in range(len(key)):
        size = longest + 1
        while start + size <= len(key) and key[start : start + size] in text:
            longest = size
            size += 1
    return longest


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_a_key_cut_in_two_by_a_message_length_limit_leaves_no_fragment(api: str) -> None:
    """Messages keep only the first few hundred characters of what a server said; a key
    that straddles that limit must be gone before the cut, not just when whole."""
    import httpx

    from attune_cli.core.providers import CallFailed, ChatRequest, Endpoint, adapter_for
    from attune_cli.core.registry import load_registry

    key = FAKE_ANTHROPIC_KEY if api == "anthropic" else FAKE_OPENAI_KEY
    registry = load_registry({}, Path("config.toml"))
    adapter = adapter_for(Endpoint(registry.providers[api], "http://127.0.0.1:9", key, True))
    longest = 0
    for filler in range(0, 420, 7):
        echoed = "j" * filler + key
        error = {"type": "error", "error": {"type": "authentication_error", "message": echoed}}
        for status, body, content_type, stream in (
            (401, json.dumps(error), "application/json", False),
            (502, echoed, "text/html", False),
            (200, echoed, "application/json", False),
            (200, f"data: {echoed}\n\n", "text/event-stream", True),
            (200, f"event: error\ndata: {json.dumps(error)}\n\n", "text/event-stream", True),
        ):

            def reply(
                request: httpx.Request,
                status: int = status,
                body: str = body,
                ct: str = content_type,
            ) -> httpx.Response:
                return httpx.Response(status, headers={"content-type": ct}, content=body.encode())

            with (
                httpx.Client(transport=httpx.MockTransport(reply)) as client,
                pytest.raises(CallFailed) as failure,
            ):
                adapter.call(client, ChatRequest("m", "hi"), stream=stream)
            longest = max(longest, longest_run_of(key, str(failure.value)))
    # "sk-" and a hint's last four characters may show; a run of eight would be a leak.
    assert longest < 8, f"{longest} characters of the key reached a message"
