"""Claude Code's print mode as a provider: subscription calls through ``claude -p``.

A Claude subscription (Pro, Max, Team) is spent through Claude Code's own login, not an API
key. One attempt runs the ``claude`` executable once::

    claude -p --output-format stream-json --verbose --include-partial-messages
           --model MODEL [--system-prompt TEXT] --max-turns 1
    (the prompt on stdin; ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN removed from its
    environment, so the subscription login pays and never a key)

With ``stream-json`` each stdout line is one JSON event: text arrives in ``stream_event``
deltas (or whole ``assistant`` messages) and the run ends with the ``result`` object
(``result``, ``is_error``, ``subtype``, ``duration_ms``, ``usage``, ``total_cost_usd``,
``session_id``). With ``json`` stdout is that result object alone.

Failures are classified as the HTTP adapters' are (``CallFailed.kind``)::

    usage limit reached     rate_limit, with the reset time as its retry hint when the
                            message gives one; no subscription model can answer until then
    not logged in           auth; no subscription model can answer
    error result, exit ≠ 0  server_error (an outage: counts for the breaker)
    silent past a limit     timeout (the child is terminated, never left running)
    no such executable      connection (the subscription endpoint is unreachable)

The executable is ``[providers.claude-code] command`` in ``config.toml`` (a path, or a name
looked up on PATH), else ``claude`` on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attune_cli.core.claude_cli import (
    _EPOCH_AFTER_BAR,
    BASE_URL_PREFIX,
    INSTALL_HINT,
    STRIPPED_ENV,
    USAGE_FILE,
    ClaudeCodeSettings,
    UsageLimit,
    child_environment,
    claude_version,
    last_usage_limit,
    locate_claude,
    parse_reset_time,
    record_usage_limit,
)
from attune_cli.core.endpoints import Endpoint
from attune_cli.core.providers.base import (
    _WATCHER,
    ERROR_TEXT_LIMIT,
    CallFailed,
    ChatRequest,
    Completion,
    as_token_count,
)
from attune_cli.core.registry import CLAUDE_CODE

if TYPE_CHECKING:
    import httpx

    from attune_cli.core.providers.deadline import AttemptLimits

__all__ = [
    "BASE_URL_PREFIX",
    "CLAUDE_CODE",
    "INSTALL_HINT",
    "STRIPPED_ENV",
    "USAGE_FILE",
    "ClaudeCodeAdapter",
    "ClaudeCodeSettings",
    "UsageLimit",
    "claude_version",
    "last_usage_limit",
    "locate_claude",
    "parse_reset_time",
    "record_usage_limit",
]

_MAX_LINE_BYTES = 16 * 2**20
_STDERR_LIMIT = 64 * 1024
_TERMINATE_GRACE_S = 2.0
_EXIT_GRACE_S = 5.0
_EOF = object()

_USAGE_LIMIT = re.compile(
    r"usage limit|limit reached|hit your limit|reached your limit|out of extra usage", re.I
)
_LOGIN = re.compile(
    r"/login|not logged in|please log in|invalid api key|oauth token|authentication_error"
    r"|authentication failed|credentials",
    re.I,
)


class ClaudeCodeAdapter:
    """One attempt = one run of ``claude -p``; see the module docstring.

    Args:
        endpoint: the subscription endpoint (its base URL is ``claude-code:`` + the path).
        executable: the ``claude`` executable.
        environ: the environment the child inherits, less ``STRIPPED_ENV``.
        data_dir: where a usage-limit failure is kept for ``auth status``; None: nowhere.
        wall_clock: epoch seconds (reset times).
        exit_grace_s: how long a child that has given its whole answer may take to exit
            before it is stopped (the answer stands either way).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        executable: Path,
        environ: Mapping[str, str] | None = None,
        *,
        data_dir: Path | None = None,
        wall_clock: Callable[[], float] = time.time,
        exit_grace_s: float = _EXIT_GRACE_S,
    ) -> None:
        self.endpoint = endpoint
        self.executable = executable
        self.environ = dict(os.environ if environ is None else environ)
        self.data_dir = data_dir
        self._wall_clock = wall_clock
        self._exit_grace_s = exit_grace_s

    @property
    def name(self) -> str:
        return self.endpoint.name

    def argv(self, request: ChatRequest, *, stream: bool) -> list[str]:
        """The command line of one attempt (the prompt goes on stdin, not here)."""
        argv = [str(self.executable), "-p", "--output-format"]
        argv += ["stream-json", "--verbose", "--include-partial-messages"] if stream else ["json"]
        argv += ["--model", request.model]
        if request.system:
            argv += ["--system-prompt", request.system]
        # One answer: attune asks a question, it does not run an agent.
        argv += ["--max-turns", "1"]
        return argv

    def environment(self) -> dict[str, str]:
        """The child's environment: this process's, without any Anthropic key."""
        return child_environment(self.environ)

    @staticmethod
    def prompt_text(request: ChatRequest) -> str:
        """What goes on the child's stdin: the prompt, or the conversation as a transcript."""
        if not request.messages:
            return request.prompt
        if len(request.messages) == 1:
            return request.messages[0].content
        labels = {"user": "User", "assistant": "Assistant"}
        return "\n\n".join(
            f"{labels.get(m.role, m.role.title())}: {m.content}" for m in request.messages
        )

    def call(
        self,
        client: httpx.Client | None,
        request: ChatRequest,
        *,
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
        limits: AttemptLimits | None = None,
        expired: Callable[[], bool] | None = None,
    ) -> Completion:
        """Run ``claude -p`` once and return its answer.

        Args:
            client: unused (the signature is the HTTP adapters').
            request: what to ask.
            stream: ``stream-json`` (text as it arrives) rather than ``json``.
            on_text: called with each piece of text as it arrives.
            limits: first output within ``first_byte_s``, then no silence longer than
                ``between_reads_s``, and all of it within ``total_s``.
            expired: polled after each event; True stops the run as a timeout.

        Raises:
            CallFailed: anything but a full answer, classified (module docstring).
            KeyboardInterrupt: Ctrl-C; the child was terminated first.
        """
        watcher = _WATCHER.get()
        if watcher is not None:
            watcher(self.name, request.model)
        total_s = limits.total_s if limits is not None else 300.0
        first_s = limits.first_byte_s if limits is not None else total_s
        between_s = limits.between_reads_s if limits is not None else total_s
        deadline = time.monotonic() + max(total_s, 0.001)
        try:
            child = subprocess.Popen(
                self.argv(request, stream=stream),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.environment(),
                start_new_session=True,
            )
        except OSError as exc:
            raise self._failure(
                f"cannot run {self.executable} ({exc.strerror or exc})",
                kind="connection",
                unreachable=True,
            ) from None
        run = _Run(child, self.prompt_text(request))
        try:
            return self._read(run, stream, on_text, expired, deadline, first_s, between_s)
        finally:
            run.stop()

    def _read(
        self,
        run: _Run,
        stream: bool,
        on_text: Callable[[str], None] | None,
        expired: Callable[[], bool] | None,
        deadline: float,
        first_s: float,
        between_s: float,
    ) -> Completion:
        parser = _Events()
        raw: list[str] = []
        for line in run.lines(deadline, first_s, between_s, self._timeout):
            if not stream:
                raw.append(line)
                continue
            text = parser.feed(line)
            if text and on_text:
                on_text(text)
            if expired is not None and expired():
                raise self._failure("the overall deadline passed mid-answer", kind="timeout")
            if parser.result is not None:
                break  # the run is over; a child that lingers after it is stopped below
        left_s = max(deadline - time.monotonic(), 0.001)
        code = run.wait(min(left_s, self._exit_grace_s) if parser.result is not None else left_s)
        if code is None and parser.result is not None:
            code = 0  # it answered in full, then did not exit: the answer stands
        if code is None:
            raise self._timeout("the claude process did not exit after its answer")
        if not stream:
            parser.feed_document("".join(raw))
        result = parser.result
        if result is None:
            return self._no_result(code, run.stderr_text(), parser)
        message = _result_message(result)
        if result.get("is_error") is True or str(result.get("subtype", "success")) != "success":
            raise self._error_result(result, message, run.stderr_text())
        if code != 0:
            raise self._classified(f"exited with code {code}: {message}", run.stderr_text())
        content = result.get("result")
        if not isinstance(content, str):
            content = "".join(parser.parts)
        if on_text and content and not (stream and parser.parts):
            # Nothing was streamed (``json``, or no text events): the whole answer at once.
            on_text(content)
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        cost = result.get("total_cost_usd")
        return Completion(
            content=content,
            input_tokens=_input_tokens(usage),
            output_tokens=as_token_count(usage.get("output_tokens")),
            status=None,
            stop_reason=str(result.get("stop_reason") or "end_turn"),
            session_id=str(result["session_id"]) if result.get("session_id") else None,
            reported_cost_usd=float(cost) if isinstance(cost, int | float) else None,
            duration_ms=_number(result.get("duration_ms")),
        )

    def _no_result(self, code: int, stderr: str, parser: _Events) -> Completion:
        what = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if parser.parts:
            raise self._failure(
                f"the claude process {what} mid-answer{_detail(stderr)}", kind="server_error"
            )
        if code == 0:
            raise self._failure(
                "the claude process ended without a result object (is it Claude Code?)"
                + _detail(stderr),
                kind="malformed_response",
            )
        raise self._classified(f"the claude process {what}", stderr)

    def _error_result(self, result: dict[str, Any], message: str, stderr: str) -> CallFailed:
        subtype = str(result.get("subtype") or "error")
        # A usage limit or a login failure comes as ``is_error`` with subtype ``success``.
        prefix = f"{subtype}: " if subtype != "success" else ""
        return self._classified(f"{prefix}{message}", stderr)

    def _classified(self, problem: str, stderr: str) -> CallFailed:
        """A failure whose kind comes from what the CLI said (usage limit, login, other)."""
        said = f"{problem}\n{stderr}"
        if _USAGE_LIMIT.search(said):
            now = self._wall_clock()
            resets_at = parse_reset_time(said, now)
            text = _EPOCH_AFTER_BAR.sub(
                "", _first_line(problem if _USAGE_LIMIT.search(problem) else stderr)
            )
            self._keep_usage_limit(UsageLimit(now, resets_at, text))
            headers = {}
            when = ""
            if resets_at is not None:
                headers["retry-after"] = str(max(int(resets_at - now), 0))
                when = f"; the window resets at {_clock_text(resets_at)}"
            failure = self._failure(
                f"subscription usage limit reached ({text}){when}",
                kind="rate_limit",
                headers=headers,
            )
            failure.exhausts_endpoint = True
            return failure
        if _LOGIN.search(said):
            failure = self._failure(
                f"Claude Code is not logged in ({_first_line(said)})", kind="auth"
            )
            failure.exhausts_endpoint = True
            return failure
        return self._failure(problem + _detail(stderr), kind="server_error")

    def _keep_usage_limit(self, limit: UsageLimit) -> None:
        if self.data_dir is None:
            return
        with contextlib.suppress(OSError):
            record_usage_limit(self.data_dir, limit)

    def _timeout(self, problem: str) -> CallFailed:
        return self._failure(problem, kind="timeout")

    def _failure(
        self,
        problem: str,
        *,
        kind: str,
        headers: Mapping[str, str] | None = None,
        unreachable: bool = False,
    ) -> CallFailed:
        return CallFailed(
            f"{CLAUDE_CODE}: {problem}", kind=kind, headers=headers, unreachable=unreachable
        )


class _Run:
    """A running child: a writer thread feeds stdin, readers drain stdout and stderr."""

    def __init__(self, child: subprocess.Popen[bytes], prompt: str) -> None:
        self.child = child
        self.queue: queue.Queue[object] = queue.Queue()
        self._stderr = bytearray()
        self._threads = [
            threading.Thread(target=self._write, args=(prompt,), daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _write(self, prompt: str) -> None:
        stdin = self.child.stdin
        assert stdin is not None
        with contextlib.suppress(OSError, ValueError):
            stdin.write(prompt.encode("utf-8"))
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _read_stdout(self) -> None:
        stdout = self.child.stdout
        assert stdout is not None
        try:
            while True:
                line = stdout.readline(_MAX_LINE_BYTES)
                if not line:
                    break
                self.queue.put(line.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass
        finally:
            self.queue.put(_EOF)

    def _read_stderr(self) -> None:
        stderr = self.child.stderr
        assert stderr is not None
        with contextlib.suppress(OSError, ValueError):
            while chunk := stderr.read(4096):
                if len(self._stderr) < _STDERR_LIMIT:
                    self._stderr += chunk[: _STDERR_LIMIT - len(self._stderr)]

    def lines(
        self,
        deadline: float,
        first_s: float,
        between_s: float,
        timeout: Callable[[str], CallFailed],
    ) -> Iterator[str]:
        """stdout's lines as they come; a silence past its limit raises ``timeout(...)``."""
        limit_s = first_s
        while True:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise timeout("the deadline passed before the answer was complete")
            wait_s = min(left_s, limit_s)
            try:
                item = self.queue.get(timeout=wait_s)
            except queue.Empty:
                if wait_s >= left_s:
                    raise timeout("the deadline passed before the answer was complete") from None
                raise timeout(f"the claude process said nothing for {wait_s:.3g} s") from None
            if item is _EOF:
                return
            limit_s = between_s
            assert isinstance(item, str)
            yield item

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self) -> str:
        self._threads[2].join(timeout=1.0)
        return bytes(self._stderr).decode("utf-8", "replace")

    def stop(self) -> None:
        """Terminate the child (and anything it started) if it still runs; close its pipes."""
        if self.child.poll() is None:
            _signal_group(self.child, signal.SIGTERM)
            try:
                self.child.wait(timeout=_TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                _signal_group(self.child, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.child.wait(timeout=_TERMINATE_GRACE_S)
        else:
            # The child is gone; a grandchild it left behind may still hold its pipes.
            _signal_group(self.child, signal.SIGKILL)
        for pipe in (self.child.stdin, self.child.stdout, self.child.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _signal_group(child: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


class _Events:
    """The print-mode events read so far: text pieces and the result object."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.whole: list[str] = []
        self.result: dict[str, Any] | None = None

    def feed(self, line: str) -> str | None:
        """Take one stdout line of ``stream-json``; the text it adds, if any."""
        line = line.strip()
        if not line:
            return None
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            return None  # a stray line (a warning): not part of the answer
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "result":
            self.result = event
        elif kind == "stream_event":
            inner = event.get("event")
            delta = inner.get("delta") if isinstance(inner, dict) else None
            if (
                isinstance(inner, dict)
                and inner.get("type") == "content_block_delta"
                and isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and isinstance(delta.get("text"), str)
            ):
                self.parts.append(delta["text"])
                return str(delta["text"])
        elif kind == "assistant" and not self.parts:
            # Without partial messages the text comes as whole assistant messages.
            message = event.get("message")
            blocks = message.get("content") if isinstance(message, dict) else None
            text = "".join(
                block["text"]
                for block in (blocks if isinstance(blocks, list) else [])
                if isinstance(block, dict)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
            )
            if text:
                self.whole.append(text)
                self.parts.append(text)
                return text
        return None

    def feed_document(self, text: str) -> None:
        """Take the whole stdout of ``json``: one result object."""
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            # Some versions print a warning line first: try the last line alone.
            lines = text.strip().splitlines()
            try:
                document = json.loads(lines[-1]) if lines else None
            except (ValueError, RecursionError):
                return
        if isinstance(document, list):  # older versions printed the whole transcript
            document = next(
                (d for d in reversed(document) if isinstance(d, dict) and "result" in d), None
            )
        if isinstance(document, dict) and (
            document.get("type") == "result" or "result" in document
        ):
            self.result = document


def _result_message(result: dict[str, Any]) -> str:
    text = result.get("result")
    if isinstance(text, str) and text.strip():
        return _first_line(text)
    errors = result.get("errors")
    if isinstance(errors, list) and errors:
        return _first_line("; ".join(str(e) for e in errors))
    return str(result.get("subtype") or "error")


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """Every prompt token the run processed: fresh, cache writes and cache reads."""
    counts = [
        as_token_count(usage.get(name))
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    if counts[0] is None:
        return None
    return sum(c for c in counts if c is not None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()[:ERROR_TEXT_LIMIT]
    return ""


def _detail(stderr: str) -> str:
    line = _first_line(stderr)
    return f" ({line})" if line else ""


def _clock_text(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).astimezone().strftime("%Y-%m-%d %H:%M %Z")
