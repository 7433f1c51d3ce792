"""A stand-in for Claude Code's ``claude`` executable (the subscription path)."""

from __future__ import annotations

from pathlib import Path

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
