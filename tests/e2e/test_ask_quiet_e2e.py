"""`attune ask` says only what a person wants where they look: quiet in a pipe, one routing line
on a terminal, the whole reason with --verbose, and a clear refusal of a non-UTF-8 prompt."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from attune_cli.emulator import ProviderEmulator

pytestmark = pytest.mark.e2e

ANSWER = "Hello from gpt-5 on the attune emulator."


@pytest.fixture
def env(attune_home: Path) -> Iterator[dict[str, str]]:
    with ProviderEmulator(api_key="sk-emulator-key-000111") as running:
        yield {
            **os.environ,
            "OPENAI_BASE_URL": running.openai_base_url,
            "OPENAI_API_KEY": "sk-emulator-key-000111",
            "TERM": "xterm",
        }


def run(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", "ask", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def on_a_terminal(env: dict[str, str], *args: str) -> str:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "attune_cli", "ask", *args],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before or ""


def test_in_a_pipe_only_the_answer_is_written(env: dict[str, str]) -> None:
    result = run(env, "hello", "-w", "notes", "-s", "general")

    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ANSWER + "\n"
    assert result.stderr == b""


def test_verbose_in_a_pipe_gives_the_routing_reason_and_the_footer(env: dict[str, str]) -> None:
    result = run(env, "hello", "--verbose")

    assert result.returncode == 0
    stderr = result.stderr.decode()
    assert "routed to" in stderr and " ms" in stderr


def test_on_a_terminal_the_routing_reason_is_one_line_and_the_footer_follows(
    env: dict[str, str],
) -> None:
    screen = on_a_terminal(env, "hello")

    routing = [line for line in screen.splitlines() if "routed to" in line]
    assert len(routing) == 1
    assert ANSWER in screen and " ms" in screen


def test_quiet_on_a_terminal_leaves_only_the_answer(env: dict[str, str]) -> None:
    screen = on_a_terminal(env, "hello", "-q")

    assert ANSWER in screen
    assert "routed to" not in screen and " ms" not in screen


def test_a_prompt_that_is_not_utf8_is_refused_with_exit_2(env: dict[str, str]) -> None:
    result = run(env, "-", stdin=b"caf\xe9 au lait\n")

    assert result.returncode == 2
    assert b"stdin is not UTF-8 text" in result.stderr
    assert b"unexpected" not in result.stderr
