"""What a model's answer and a provider's error may do to a terminal: `attune ask` for real."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.emulator import Behaviour, ProviderEmulator

pytestmark = pytest.mark.e2e

ANSWER = "Line one\tcol\nClear\x1b[2J\x1b[H title\x1b]0;pwned\x07 c1\x9b31m bidi\u202eevil\n"


@pytest.fixture
def emulator() -> Iterator[ProviderEmulator]:
    with ProviderEmulator() as running:
        yield running


def env(home: Path, emulator: ProviderEmulator) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    values.update(ATTUNE_HOME=str(home), NO_COLOR="1", OPENAI_BASE_URL=emulator.openai_base_url)
    return values


ASK = [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", "gpt-5-mini"]


def test_an_answer_piped_or_redirected_is_written_exactly_as_it_came(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour.healthy(ANSWER))
    result = subprocess.run(
        ASK, env=env(attune_home, emulator), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER


def test_an_answer_on_a_terminal_shows_control_characters_escaped(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    emulator.set_behaviour("gpt-5-mini", Behaviour.healthy(ANSWER))
    leader, follower = pty.openpty()
    try:
        # The with block closes the stderr pipe once the child is reaped.
        with subprocess.Popen(
            ASK,
            env=env(attune_home, emulator),
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
        ) as child:
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            assert child.wait(timeout=60) == 0
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    assert "Line one\tcol\n" in shown  # line breaks and tabs are the answer's layout
    assert "Clear\\x1b[2J\\x1b[H title\\x1b]0;pwned\\x07 c1\\x9b31m bidi\\u202eevil" in shown
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in shown


def test_a_provider_error_with_escape_sequences_is_shown_escaped(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    emulator.set_behaviour(
        "gpt-5-mini", Behaviour.failing(400, error_type="bad\x1b]0;pwned\x07\x1b[2Jrequest")
    )
    result = subprocess.run(
        ASK, env=env(attune_home, emulator), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Error:" in result.stderr
    for raw in ("\x1b", "\x07"):
        assert raw not in result.stderr
    assert "\\x1b" in result.stderr
