"""Claude Code's ``claude`` executable, without running a call: where it is, its version, and
the last usage limit it reported.

Kept apart from the provider (``attune_cli.core.providers.claude_code``) because ``attune auth
status`` shows these and must not import httpx or the provider machinery.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune_cli.core.errors import ConfigError
from attune_cli.core.registry import CLAUDE_CODE

STRIPPED_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
"""Removed from the child's environment: with a key set, Claude Code would bill the key."""

INSTALL_HINT = (
    "install Claude Code (`npm install -g @anthropic-ai/claude-code`), run `claude` once to "
    "log in, or set [providers.claude-code] command in config.toml; or use --mode api"
)

BASE_URL_PREFIX = "claude-code:"
"""Base URLs of the subscription endpoint are ``claude-code:`` and the executable's path, so
its circuit (``endpoint:claude-code:/usr/local/bin/claude``) is its own."""

USAGE_FILE = "claude-code-usage.json"
"""In the data folder: the last usage-limit failure and when its window resets."""


@dataclass(frozen=True)
class ClaudeCodeSettings:
    """``[providers.claude-code]`` of ``config.toml``.

    Attributes:
        command: the executable as configured (a path, or a name on PATH); None: ``claude``.
        config_file: the file it was read from, for messages.
    """

    command: str | None = None
    config_file: Path | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], path: Path) -> ClaudeCodeSettings:
        """Read ``[providers.claude-code]``.

        Raises:
            ConfigError: the table or its ``command`` has the wrong type (exit 2).
        """
        providers = config.get("providers", {})
        section = providers.get(CLAUDE_CODE, {}) if isinstance(providers, dict) else {}
        if not isinstance(section, dict):
            raise ConfigError(
                path, "must be a table", key=f"providers.{CLAUDE_CODE}", value=section
            )
        command = section.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            raise ConfigError(
                path,
                "must be the path or name of the claude executable",
                key=f"providers.{CLAUDE_CODE}.command",
                value=command,
            )
        return cls(command=command.strip() if command else None, config_file=path)


def locate_claude(
    settings: ClaudeCodeSettings, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The ``claude`` executable: the configured ``command``, else ``claude`` on PATH.

    Returns:
        Its path; None when nothing is configured and ``claude`` is not on PATH.

    Raises:
        ConfigError: a configured ``command`` that does not exist or is not executable
            (exit 2, naming ``providers.claude-code.command``).
    """
    import shutil

    environment = os.environ if environ is None else environ
    search_path = environment.get("PATH", os.defpath)
    if settings.command is None:
        found = shutil.which("claude", path=search_path)
        return Path(found) if found else None
    key = f"providers.{CLAUDE_CODE}.command"
    where = settings.config_file or Path("config.toml")
    command = os.path.expanduser(settings.command)
    if os.sep in command:
        candidate = Path(command)
        if not candidate.exists():
            raise ConfigError(where, "no such file", key=key, value=settings.command)
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            raise ConfigError(where, "is not an executable file", key=key, value=settings.command)
        return candidate
    found = shutil.which(command, path=search_path)
    if found is None:
        raise ConfigError(where, "is not an executable on PATH", key=key, value=settings.command)
    return Path(found)


def claude_version(executable: Path, timeout_s: float = 10.0) -> str | None:
    """What ``claude --version`` prints (``2.0.14 (Claude Code)``), None when it fails."""
    import subprocess

    try:
        done = subprocess.run(
            [str(executable), "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=child_environment(os.environ),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.strip().splitlines()
    if done.returncode != 0 or not text:
        return None
    return text[0][:200]


VERSION_CACHE = "claude-code-version.json"


def cached_claude_version(executable: Path, data_dir: Path) -> str | None:
    """``claude_version``, remembered while the executable file stays the same.

    ``claude --version`` starts Node (hundreds of milliseconds); ``auth status`` is on a
    100 ms budget, so it asks once per installed version (the file's size and mtime).
    """
    try:
        stat = executable.resolve().stat()
    except OSError:
        return None
    identity = [str(executable), stat.st_size, stat.st_mtime_ns]
    cache = data_dir / VERSION_CACHE
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        document = json.loads(cache.read_text(encoding="utf-8"))
        if document["identity"] == identity:
            return str(document["version"])
    version = claude_version(executable)
    if version is not None:
        with contextlib.suppress(OSError):
            from attune_cli.core.paths import ensure_private_dir

            ensure_private_dir(data_dir)
            temporary = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            temporary.write_text(
                json.dumps({"identity": identity, "version": version}), encoding="utf-8"
            )
            os.replace(temporary, cache)
    return version


@dataclass(frozen=True)
class UsageLimit:
    """A usage-limit failure of the subscription, as ``auth status`` shows it.

    Attributes:
        seen_at: when it happened (epoch seconds).
        resets_at: when the message said the window resets (epoch seconds), None when it did
            not say.
        message: the CLI's words, cut short.
    """

    seen_at: float
    resets_at: float | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"seen_at": self.seen_at, "resets_at": self.resets_at, "message": self.message}


def record_usage_limit(data_dir: Path, limit: UsageLimit) -> None:
    """Keep ``limit`` as the last one seen (a small JSON file, written atomically)."""
    from attune_cli.core.paths import ensure_private_dir

    ensure_private_dir(data_dir)
    target = data_dir / USAGE_FILE
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps({"last_usage_limit": limit.to_json()}), encoding="utf-8")
    os.replace(temporary, target)


def last_usage_limit(data_dir: Path) -> UsageLimit | None:
    """The last usage-limit failure kept by ``record_usage_limit``; None when none (or broken)."""
    try:
        document = json.loads((data_dir / USAGE_FILE).read_text(encoding="utf-8"))
        found = document["last_usage_limit"]
        resets_at = found.get("resets_at")
        return UsageLimit(
            seen_at=float(found["seen_at"]),
            resets_at=float(resets_at) if resets_at is not None else None,
            message=str(found.get("message", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


_EPOCH_AFTER_BAR = re.compile(r"\|\s*(\d{9,11})\b")
_RESETS_AT = re.compile(
    r"resets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?(?:\s*\(([^)]+)\))?", re.I
)
_RESETS_IN = re.compile(r"resets?\s+in\s+(?:(\d+)\s*h\w*)?\s*(?:(\d+)\s*m\w*)?", re.I)


def parse_reset_time(message: str, now_s: float) -> float | None:
    """When a usage-limit message says the window resets (epoch seconds), None if it does not.

    Understands the forms Claude Code has printed: ``Claude AI usage limit reached|1767225600``
    (epoch seconds after a bar), ``… resets 3pm (Europe/London)`` / ``resets at 15:30`` (the
    next such time, in the named zone or local time), and ``resets in 2h 30m``.
    """
    from datetime import datetime, timedelta

    found = _EPOCH_AFTER_BAR.search(message)
    if found:
        return float(found.group(1))
    found = _RESETS_IN.search(message)
    if found and (found.group(1) or found.group(2)):
        return now_s + int(found.group(1) or 0) * 3600 + int(found.group(2) or 0) * 60
    found = _RESETS_AT.search(message)
    if not found:
        return None
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    meridiem = (found.group(3) or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone: Any = None
    if found.group(4):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(found.group(4).strip())
    now = datetime.fromtimestamp(now_s, zone) if zone else datetime.fromtimestamp(now_s)
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if moment.timestamp() <= now_s:
        moment += timedelta(days=1)
    return moment.timestamp()


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any Anthropic key (``STRIPPED_ENV``): the plan pays, never a key."""
    return {name: value for name, value in environ.items() if name not in STRIPPED_ENV}
