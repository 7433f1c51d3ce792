"""Auth modes as a person meets them: `attune ask` with a stand-in `claude` first on PATH.

The stand-in (``FakeClaude`` in conftest) behaves as Claude Code's print mode does and writes
down what it received; the pay-per-token side is the provider emulator on 127.0.0.1. Rows are
read back from the real SQLite file.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_claude import FakeClaude

from attune_cli.emulator import ProviderEmulator

pytestmark = pytest.mark.e2e

ANTHROPIC_KEY = "sk-ant-e2e-0123456789abcdef"
MAX_SUBSCRIPTION = '[auth]\nsubscription_tier = "max"\ndefault_mode = "subscription"\n'


@pytest.fixture
def emulator() -> Iterator[ProviderEmulator]:
    with ProviderEmulator() as running:
        yield running


def attune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def configure(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


def rows(home: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "telemetry.db") as conn:
        return conn.execute(
            "SELECT provider, model, success, error_kind, billing, cost_usd FROM calls ORDER BY id"
        ).fetchall()


def test_subscription_mode_calls_claude_without_the_key_and_says_billing(
    attune_home: Path, fake_claude: FakeClaude
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)

    result = attune(
        "ask",
        "Say hello",
        "--system",
        "Be brief.",
        "--json",
        env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_AUTH_TOKEN": "tok-secret"},
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["content"] == "Hello from the plan."
    assert document["billing"] == "subscription" and document["plan_covered"] is True
    assert (document["input_tokens"], document["output_tokens"]) == (20, 7)
    (run,) = fake_claude.runs()
    argv, env = run["argv"], run["env"]
    assert isinstance(argv, list) and isinstance(env, dict)
    assert argv[:3] == ["-p", "--output-format", "stream-json"] or "json" in argv
    assert argv[argv.index("--model") + 1] == document["model"]
    assert argv[argv.index("--system-prompt") + 1] == "Be brief."
    assert run["stdin"] == "Say hello"
    assert "ANTHROPIC_API_KEY" not in env and "ANTHROPIC_AUTH_TOKEN" not in env
    assert ANTHROPIC_KEY not in json.dumps(run)
    ((provider, model, success, error_kind, billing, cost),) = rows(attune_home)
    assert (provider, model, success, error_kind, billing) == (
        "anthropic",
        document["model"],
        1,
        None,
        "subscription",
    )
    assert cost is not None and cost > 0  # the API-equivalent price, covered by the plan


def test_streamed_text_reaches_the_terminal_and_the_footer_says_the_plan_paid(
    attune_home: Path, fake_claude: FakeClaude
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)

    result = attune("ask", "Say hello", "--verbose")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from the plan.\n"
    assert "billing: subscription (mode subscription)" in result.stderr
    assert "API-equivalent, covered by the plan" in result.stderr
    argv = fake_claude.runs()[0]["argv"]
    assert isinstance(argv, list) and "--include-partial-messages" in argv


def test_subscription_mode_without_claude_exits_1_saying_what_to_install(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)
    env = {
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "PATH": str(Path(sys.executable).parent),
    }

    result = attune("ask", "Say hello", env=env)

    assert result.returncode == 1
    assert "no `claude` executable was found" in result.stderr
    assert "npm install -g @anthropic-ai/claude-code" in result.stderr
    assert emulator.requests == []  # no silent switch to the API
    assert not (attune_home / "telemetry.db").exists() or rows(attune_home) == []


def test_usage_limit_without_fallback_says_when_the_window_resets(
    attune_home: Path, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)
    reset = int(time.time()) + 3 * 3600
    env = {
        "FAKE_CLAUDE_SCENARIO": "usage_limit",
        "FAKE_CLAUDE_RESET": str(reset),
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    }

    result = attune("ask", "Say hello", "--json", env=env)
    status = json.loads(attune("auth", "status", "--json", env=env).stdout)

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["error_kind"] == "rate_limit" and document["billing"] == "subscription"
    assert "usage limit reached" in document["error"]
    assert "api_fallback" in result.stderr  # the hint says how to let the API stand in
    assert len(fake_claude.runs()) == 1  # the other subscription models were not tried
    assert emulator.requests == []
    assert [r[3:5] for r in rows(attune_home)] == [("rate_limit", "subscription")]
    limit = status["usage_window"]["last_usage_limit"]
    assert limit["in_force"] is True
    assert limit["resets_at"].startswith(time.strftime("%Y-%m-%dT%H", time.gmtime(reset)))
    assert status["claude_code"]["version"] == "2.0.14 (Claude Code)"


def test_usage_limit_with_api_fallback_goes_on_to_the_api_and_says_so(
    attune_home: Path, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION + "api_fallback = true\n")
    env = {
        "FAKE_CLAUDE_SCENARIO": "usage_limit",
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    }

    result = attune("ask", "Say hello", "--json", "--verbose", env=env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["billing"] == "api" and document["fallback_used"] is True
    assert "billed per token ([auth] api_fallback = true)" in result.stderr
    assert [r[4] for r in rows(attune_home)] == ["subscription", "api"]
    assert len(emulator.requests) == 1


def test_api_mode_never_runs_claude(
    attune_home: Path, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)
    env = {"ANTHROPIC_BASE_URL": emulator.anthropic_base_url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}

    result = attune("ask", "Say hello", "--mode", "api", "--json", env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["billing"] == "api"
    assert fake_claude.runs() == [] and len(emulator.requests) == 1
    assert [r[4] for r in rows(attune_home)] == ["api"]


@pytest.mark.parametrize("scenario", ["login", "error", "crash"])
def test_failures_of_the_cli_are_one_line_with_what_to_do(
    attune_home: Path, fake_claude: FakeClaude, scenario: str
) -> None:
    # An error result is retried: after a short back-off (0.05 s, not the default 0.5 s).
    configure(attune_home, MAX_SUBSCRIPTION + "\n[executor]\nretry_delay_s = 0.05\n")

    result = attune("ask", "Say hello", env={"FAKE_CLAUDE_SCENARIO": scenario})

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    expected = {
        "login": "Claude Code is not logged in",
        "error": "error_during_execution",
        "crash": "exited with code 3 mid-answer",
    }[scenario]
    assert expected in result.stderr
    if scenario == "login":
        assert "run `claude` once and log in (/login)" in result.stderr
    if scenario == "crash":
        assert result.stdout.startswith("Half an ans")  # what was streamed stays shown


def test_a_hang_is_cut_at_the_deadline_and_the_child_is_gone(
    attune_home: Path, fake_claude: FakeClaude
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)

    result = attune("ask", "Say hello", "--timeout", "1", env={"FAKE_CLAUDE_SCENARIO": "hang"})

    assert result.returncode == 1
    assert "deadline" in result.stderr
    pid = int(fake_claude.pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_ctrl_c_stops_attune_and_leaves_no_claude_running(
    attune_home: Path, fake_claude: FakeClaude
) -> None:
    configure(attune_home, MAX_SUBSCRIPTION)
    process = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", "ask", "Say hello"],
        env={**os.environ, "FAKE_CLAUDE_SCENARIO": "slow"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not fake_claude.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(fake_claude.pidfile.read_text())
        # Mid-answer: the first text has reached attune's stdout.
        assert process.stdout is not None
        shown = b""
        while b"Thinking" not in shown and time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 0.1)[0]:
                shown += os.read(process.stdout.fileno(), 4096)
        assert b"Thinking" in shown, shown
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ('[auth]\ndefault_mode = "sometimes"\n', "auth.default_mode"),
        ('[auth]\napi_fallback = "yes"\n', "auth.api_fallback"),
        ('[providers.claude-code]\ncommand = "/no/such/claude"\n', "providers.claude-code.command"),
        ('[providers.claude-code]\ncommand = "{plain}"\n', "providers.claude-code.command"),
    ],
)
def test_bad_settings_exit_2_naming_the_key(
    attune_home: Path, tmp_path: Path, config: str, key: str
) -> None:
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    configure(attune_home, config.format(plain=plain))

    asked = attune("ask", "Say hello")
    status = attune("auth", "status")

    for result in (asked, status):
        assert result.returncode == 2, result.stderr
        assert key in result.stderr and "Traceback" not in result.stderr


def test_unknown_mode_flag_exits_2_naming_it(attune_home: Path) -> None:
    result = attune("ask", "Say hello", "--mode", "cheap")

    assert result.returncode == 2 and "--mode" in result.stderr


def test_auth_test_claude_code_makes_one_minimal_call(
    attune_home: Path, fake_claude: FakeClaude
) -> None:
    result = attune("auth", "test", "claude-code")
    login = attune("auth", "test", "claude-code", env={"FAKE_CLAUDE_SCENARIO": "login"})

    assert result.returncode == 0, result.stderr
    assert "✓ claude runs: 2.0.14 (Claude Code)" in result.stdout
    assert "✓ logged in" in result.stdout and "✓ answered" in result.stdout
    runs = fake_claude.runs()
    assert len(runs) == 2
    argv = runs[0]["argv"]
    assert isinstance(argv, list) and argv[argv.index("--output-format") + 1] == "json"
    assert login.returncode == 1 and "✗ not logged in" in login.stdout


def test_recommend_and_ask_choose_the_same_mode_for_the_same_content(
    attune_home: Path, tmp_path: Path, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(
        attune_home,
        '[auth]\nsubscription_tier = "max"\ndefault_mode = "auto"\n'
        "small_module_threshold = 5\nmedium_module_threshold = 10\n"
        "prefer_subscription = false\n",
    )
    env = {"ANTHROPIC_BASE_URL": emulator.anthropic_base_url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    body = "\n".join(f"value_{i} = {i}  # line" for i in range(200))
    sizes = {
        "small": "# a comment line\n\nx = 1\ny = 2\n",
        "medium": "# header\n" + "\n".join(f"v{i} = {i}" for i in range(7)) + "\n",
        "large": body + "\n",
    }
    for name, text in sizes.items():
        module = tmp_path / f"{name}.py"
        module.write_text(text, encoding="utf-8")
        recommended = json.loads(attune("auth", "recommend", str(module), "--json").stdout)
        asked = attune("ask", text, "--json", "-m", "claude-haiku-4-5", env=env)
        assert asked.returncode == 0, asked.stderr
        billing = json.loads(asked.stdout)["billing"]
        assert recommended["recommended_mode"] == billing, name
    assert [r[4] for r in rows(attune_home)] == ["subscription", "api", "api"]


def test_a_real_claude_version_parses_when_one_is_installed() -> None:
    from attune_cli.core.claude_cli import claude_version

    real = shutil.which("claude")
    if real is None:
        pytest.skip("no real `claude` on PATH (npm install -g @anthropic-ai/claude-code)")
    version = claude_version(Path(real))
    assert version is not None and version[0].isdigit()


def test_the_gateway_bills_by_the_mode_too(attune_home: Path, fake_claude: FakeClaude) -> None:
    import anthropic

    configure(attune_home, MAX_SUBSCRIPTION)
    env = {**os.environ, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", "serve", "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "listening on " in line, line
        url = line.split("listening on ", 1)[1].strip()
        # Closed here: its pooled socket would otherwise warn when garbage collected, in
        # whichever test happens to be running then.
        with anthropic.Anthropic(base_url=url, api_key="sk-client-0123456789") as client:
            message = client.messages.create(
                model="attune/ci/triage",
                max_tokens=64,
                system="Be brief.",
                messages=[{"role": "user", "content": "hi"}],
            )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()

    assert message.content[0].text == "Hello from the plan."  # type: ignore[union-attr]
    (run,) = fake_claude.runs()
    env_seen = run["env"]
    assert isinstance(env_seen, dict) and "ANTHROPIC_API_KEY" not in env_seen
    assert run["stdin"] == "hi"
    assert [r[4] for r in rows(attune_home)] == ["subscription"]


def test_setup_says_when_the_chosen_mode_needs_claude_and_login_refuses_a_key(
    attune_home: Path,
) -> None:
    no_claude = {"PATH": str(Path(sys.executable).parent)}

    setup = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes", env=no_claude)
    api_setup = attune("auth", "setup", "--tier", "max", "--mode", "api", "--yes", env=no_claude)
    login = subprocess.run(
        [sys.executable, "-m", "attune_cli", "auth", "login", "claude-code", "--with-key-stdin"],
        input="sk-ant-not-wanted-0123456789",
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert setup.returncode == 0, setup.stderr
    assert "`claude` is not on PATH" in setup.stderr
    assert api_setup.returncode == 0 and "`claude`" not in api_setup.stderr
    assert login.returncode == 2 and "takes no key" in login.stderr
    assert not (attune_home / "credentials.toml").exists()


def test_auto_sends_a_model_the_plan_does_not_serve_to_its_api(
    attune_home: Path, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, '[auth]\nsubscription_tier = "max"\ndefault_mode = "auto"\n')
    env = {"OPENAI_BASE_URL": emulator.openai_base_url, "OPENAI_API_KEY": "sk-proj-e2e-0123456789"}

    result = attune("ask", "hi", "-m", "gpt-5-mini", "--json", "--verbose", env=env)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["billing"] == "api"
    assert "auto: gpt-5-mini is not an Anthropic model" in result.stderr
    assert fake_claude.runs() == []
