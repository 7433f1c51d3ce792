"""The spinner ``attune ask`` shows on a terminal while no text has arrived yet.

It names the model being waited on (retries and fallbacks move it along) and the seconds since
the call began, on stderr, and leaves nothing behind: it is cleared when the first text arrives
or the call ends. Where stderr is not a terminal it is never drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.spinner import Spinner


class WaitingSpinner:
    """``⠋ waiting for gpt-5-mini (openai) · 3 s`` on stderr until the first text arrives.

    Usage::

        with WaitingSpinner(err, enabled=sys.stderr.isatty()) as spinner:
            ask(..., on_attempt=spinner.attempt, on_text=lambda t: (spinner.stop(), write(t)))

    Args:
        console: makes the stderr console to draw on (called when drawing starts, so a
            spinner that never draws never loads Rich).
        enabled: whether to draw at all (stderr is a terminal).
        clock: monotonic seconds, for the time so far.
    """

    def __init__(
        self,
        console: Callable[[], Console],
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.enabled = enabled
        self.label: str | None = None
        self._clock = clock
        self._started = clock()
        self._spinner: Spinner | None = None
        self._live: Live | None = None

    def __enter__(self) -> WaitingSpinner:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Begin drawing (when enabled)."""
        if not self.enabled or self._live is not None:
            return
        from rich.live import Live
        from rich.spinner import Spinner

        self._started = self._clock()
        self._spinner = Spinner("dots", style="cyan")
        self._live = Live(
            self,
            console=self.console(),
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def attempt(self, provider: str, model: str) -> None:
        """An attempt at ``model`` on ``provider`` began: name it."""
        self.label = f"{model} ({provider})"

    def stop(self) -> None:
        """Clear the spinner for good (text arrived, or the call ended)."""
        live, self._live = self._live, None
        self.enabled = False
        if live is not None:
            live.stop()

    def text(self) -> str:
        """The words next to the spinner."""
        elapsed_s = max(0, int(self._clock() - self._started))
        what = self.label or "the model"
        return f"waiting for {what} · {elapsed_s} s"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        assert self._spinner is not None
        # Text, not markup: a model id comes from data.
        self._spinner.update(text=Text(self.text(), style="dim"))
        yield self._spinner
