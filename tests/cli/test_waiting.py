"""The spinner ``attune ask`` draws on a terminal while no text has arrived."""

from __future__ import annotations

import io

from rich.console import Console

from attune_cli.cli.waiting import WaitingSpinner


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=100, color_system=None), buffer


def test_it_names_the_model_waited_on_and_the_seconds_so_far() -> None:
    console, buffer = terminal()
    clock = Clock()
    spinner = WaitingSpinner(lambda: console, enabled=True, clock=clock)
    spinner.start()
    try:
        assert spinner.text() == "waiting for the model · 0 s"
        spinner.attempt("openai", "gpt-5-mini")
        clock.now += 3.7
        assert spinner.text() == "waiting for gpt-5-mini (openai) · 3 s"
        # A fallback moves the name along; the seconds count the whole call.
        spinner.attempt("anthropic", "claude-[bold]haiku")
        clock.now += 1
        console.print(spinner)
    finally:
        spinner.stop()
    # A model id is data, never markup.
    assert "waiting for claude-[bold]haiku (anthropic) · 4 s" in buffer.getvalue()


def test_once_stopped_it_never_comes_back() -> None:
    console, buffer = terminal()
    spinner = WaitingSpinner(lambda: console, enabled=True, clock=Clock())
    spinner.start()
    spinner.stop()
    drawn = buffer.getvalue()
    spinner.start()  # the first text arrived: a later start (a retry) must not redraw it
    spinner.stop()
    assert buffer.getvalue() == drawn


def test_when_stderr_is_not_a_terminal_nothing_is_drawn() -> None:
    console, buffer = terminal()
    with WaitingSpinner(lambda: console, enabled=False, clock=Clock()) as spinner:
        spinner.attempt("openai", "gpt-5-mini")
    assert buffer.getvalue() == ""
