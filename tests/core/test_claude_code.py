"""The subscription provider: one run of a stand-in `claude -p` per attempt (``FakeClaude``)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.fake_claude import FakeClaude

from attune_cli.core.errors import ConfigError
from attune_cli.core.providers.base import CallFailed, ChatRequest, Endpoint, Message
from attune_cli.core.providers.claude_code import (
    ClaudeCodeAdapter,
    ClaudeCodeSettings,
    claude_version,
    last_usage_limit,
    locate_claude,
    parse_reset_time,
)
from attune_cli.core.providers.deadline import AttemptLimits
from attune_cli.core.registry import Provider

ANTHROPIC = Provider(
    "anthropic", api="anthropic", base_url="https://api.anthropic.com", key_env=None
)


def adapter(
    fake: FakeClaude, tmp_path: Path, *, exit_grace_s: float = 5.0, **env: str
) -> ClaudeCodeAdapter:
    endpoint = Endpoint(ANTHROPIC, f"claude-code:{fake.path}", None, True)
    environ = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-must-not-pass", **env}
    environ["ANTHROPIC_AUTH_TOKEN"] = "token-must-not-pass"
    return ClaudeCodeAdapter(
        endpoint, fake.path, environ, data_dir=tmp_path / "data", exit_grace_s=exit_grace_s
    )


def limits(total_s: float = 20.0, first_s: float = 20.0) -> AttemptLimits:
    return AttemptLimits(
        connect_s=5, first_byte_s=first_s, between_reads_s=first_s, write_s=5, total_s=total_s
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running; reaped children raise above.
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def test_stream_json_sends_print_mode_flags_and_no_key_and_streams_the_text(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    pieces: list[str] = []
    request = ChatRequest("claude-haiku-4-5", "Say hello", system="Be brief.", max_tokens=64)

    done = adapter(fake_claude, tmp_path).call(
        None, request, stream=True, on_text=pieces.append, limits=limits()
    )

    (run,) = fake_claude.runs()
    argv = run["argv"]
    assert isinstance(argv, list)
    assert argv[:2] == ["-p", "--output-format"] and argv[2] == "stream-json"
    assert "--verbose" in argv and "--include-partial-messages" in argv
    assert argv[argv.index("--model") + 1] == "claude-haiku-4-5"
    assert argv[argv.index("--system-prompt") + 1] == "Be brief."
    assert "Say hello" not in argv and run["stdin"] == "Say hello"
    env = run["env"]
    assert isinstance(env, dict)
    assert "ANTHROPIC_API_KEY" not in env and "ANTHROPIC_AUTH_TOKEN" not in env
    assert pieces == ["Hello ", "from the plan."]
    assert done.content == "Hello from the plan."
    assert (done.input_tokens, done.output_tokens) == (20, 7)  # fresh + cache reads
    assert done.session_id == "5e551011-0000-4000-8000-000000000001"
    assert done.reported_cost_usd == pytest.approx(0.0123)
    assert done.duration_ms == 1234 and done.status is None


def test_json_format_gives_the_whole_answer_at_once(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    pieces: list[str] = []
    request = ChatRequest(
        "claude-sonnet-4-5",
        "",
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "More")),
    )

    done = adapter(fake_claude, tmp_path).call(
        None, request, stream=False, on_text=pieces.append, limits=limits()
    )

    (run,) = fake_claude.runs()
    argv = run["argv"]
    assert isinstance(argv, list) and argv[argv.index("--output-format") + 1] == "json"
    assert "--system-prompt" not in argv
    assert run["stdin"] == "User: Hi\n\nAssistant: Hello\n\nUser: More"
    assert pieces == ["Hello from the plan."] and done.content == "Hello from the plan."


def test_an_error_result_is_an_outage_naming_its_subtype(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    with pytest.raises(CallFailed) as caught:
        adapter(fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="error").call(
            None, ChatRequest("claude-haiku-4-5", "x"), limits=limits()
        )

    assert caught.value.kind == "server_error" and not caught.value.exhausts_endpoint
    assert "error_during_execution" in caught.value.message


@pytest.mark.parametrize("stream", [True, False])
def test_a_usage_limit_is_a_rate_limit_with_its_reset_time_kept(
    fake_claude: FakeClaude, tmp_path: Path, stream: bool
) -> None:
    reset = int(time.time()) + 7200
    with pytest.raises(CallFailed) as caught:
        adapter(
            fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="usage_limit", FAKE_CLAUDE_RESET=str(reset)
        ).call(None, ChatRequest("claude-haiku-4-5", "x"), stream=stream, limits=limits())

    failure = caught.value
    assert failure.kind == "rate_limit" and failure.exhausts_endpoint
    assert 7100 < int(failure.headers["retry-after"]) <= 7200
    assert "usage limit reached" in failure.message and "resets at" in failure.message
    kept = last_usage_limit(tmp_path / "data")
    assert kept is not None and kept.resets_at == reset


def test_not_logged_in_is_an_auth_failure_that_says_how_to_log_in(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    with pytest.raises(CallFailed) as caught:
        adapter(fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="login").call(
            None, ChatRequest("claude-haiku-4-5", "x"), limits=limits()
        )

    assert caught.value.kind == "auth" and caught.value.exhausts_endpoint
    assert "not logged in" in caught.value.message and "/login" in caught.value.message


def test_a_silent_child_times_out_and_is_terminated(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        adapter(fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="hang").call(
            None, ChatRequest("claude-haiku-4-5", "x"), limits=limits(total_s=30, first_s=1.5)
        )

    assert caught.value.kind == "timeout" and "said nothing" in caught.value.message
    assert time.monotonic() - started < 25
    assert not alive(int(fake_claude.pidfile.read_text()))


def test_ctrl_c_mid_answer_terminates_the_child(fake_claude: FakeClaude, tmp_path: Path) -> None:
    def interrupt(_piece: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        adapter(fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="slow").call(
            None, ChatRequest("claude-haiku-4-5", "x"), on_text=interrupt, limits=limits()
        )

    assert not alive(int(fake_claude.pidfile.read_text()))


def test_a_crash_mid_stream_keeps_the_text_and_says_what_the_child_said(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    pieces: list[str] = []
    with pytest.raises(CallFailed) as caught:
        adapter(fake_claude, tmp_path, FAKE_CLAUDE_SCENARIO="crash").call(
            None, ChatRequest("claude-haiku-4-5", "x"), on_text=pieces.append, limits=limits()
        )

    assert pieces == ["Half an ans"]
    assert caught.value.kind == "server_error"
    assert "exited with code 3 mid-answer" in caught.value.message
    assert "ran out of memory" in caught.value.message


def test_a_missing_executable_is_an_unreachable_endpoint(tmp_path: Path) -> None:
    gone = tmp_path / "claude"
    endpoint = Endpoint(ANTHROPIC, f"claude-code:{gone}", None, True)
    with pytest.raises(CallFailed) as caught:
        ClaudeCodeAdapter(endpoint, gone, {}).call(None, ChatRequest("m", "x"), limits=limits())

    assert caught.value.kind == "connection" and caught.value.unreachable


def test_the_executable_comes_from_config_or_path(fake_claude: FakeClaude, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    on_path = locate_claude(ClaudeCodeSettings(), os.environ)
    named = locate_claude(ClaudeCodeSettings(str(fake_claude.path), config), {"PATH": ""})

    assert on_path == fake_claude.path and named == fake_claude.path
    assert locate_claude(ClaudeCodeSettings(), {"PATH": str(tmp_path / "empty")}) is None
    assert claude_version(fake_claude.path) == "2.0.14 (Claude Code)"


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("/no/such/claude", "no such file"),
        ("{plain}", "is not an executable file"),
        ("no-such-claude-anywhere", "is not an executable on PATH"),
    ],
)
def test_a_bad_command_names_the_config_key(tmp_path: Path, command: str, problem: str) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    settings = ClaudeCodeSettings(command.format(plain=plain), tmp_path / "config.toml")

    with pytest.raises(ConfigError) as caught:
        locate_claude(settings, {"PATH": str(tmp_path)})

    assert "providers.claude-code.command" in caught.value.message
    assert problem in caught.value.message and caught.value.exit_code == 2


def test_a_command_of_the_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.claude-code\.command"):
        ClaudeCodeSettings.from_config({"providers": {"claude-code": {"command": 3}}}, tmp_path)


def test_reset_times_in_the_forms_claude_code_prints() -> None:
    now = datetime(2026, 1, 7, 13, 20, tzinfo=UTC).timestamp()

    assert parse_reset_time("Claude AI usage limit reached|1767801600", now) == 1767801600
    assert parse_reset_time("limit reached, resets in 2h 30m", now) == now + 9000
    three_pm = datetime(2026, 1, 7, 15, 0, tzinfo=UTC).timestamp()
    assert parse_reset_time("5-hour limit reached ∙ resets 3pm (UTC)", now) == three_pm
    next_day = datetime(2026, 1, 8, 9, 30, tzinfo=UTC).timestamp()
    assert parse_reset_time("resets at 9:30am (UTC)", now) == next_day
    assert parse_reset_time("usage limit reached", now) is None


def test_a_child_that_lingers_after_its_result_is_stopped_and_the_answer_stands(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    # The child sleeps for ten minutes after its result: half a second of grace (five by
    # default) tells a lingering child from one that exits as well as the default does.
    lingering = adapter(fake_claude, tmp_path, exit_grace_s=0.5, FAKE_CLAUDE_SCENARIO="linger")
    done = lingering.call(None, ChatRequest("claude-haiku-4-5", "x"), limits=limits())

    assert done.content == "Hello from the plan."
    assert not alive(int(fake_claude.pidfile.read_text()))


def test_auth_status_asks_the_version_once_per_installed_executable(
    fake_claude: FakeClaude, tmp_path: Path
) -> None:
    from attune_cli.core.claude_cli import cached_claude_version

    data = tmp_path / "data"
    first = cached_claude_version(fake_claude.path, data)
    again = cached_claude_version(fake_claude.path, data)
    asked_before_upgrade = fake_claude.version_asked()
    fake_claude.path.write_text(
        fake_claude.path.read_text().replace("2.0.14", "2.1.7") + "\n# upgraded\n"
    )
    upgraded = cached_claude_version(fake_claude.path, data)

    assert first == again == "2.0.14 (Claude Code)"
    assert asked_before_upgrade == 1
    assert upgraded == "2.1.7 (Claude Code)" and fake_claude.version_asked() == 2
