"""The errors attune raises, each carrying the message a person needs.

Hierarchy::

    AttuneError                 anything attune reports to a user (exit 1 unless a subclass says)
    ├── UsageError              bad flag value or bad input (exit 2)
    │   ├── ConfigError         config.toml / credentials.toml unreadable or invalid
    │   ├── InputFileError      a file given on the command line is missing, binary or invalid
    │   └── StoreVersionError   telemetry.db was written by a newer attune
    ├── PermissionsError        a secrets file is readable by others (exit 2)
    └── OperationError          the operation was tried and failed (exit 1)
        ├── ProviderError       a provider call failed (kind, HTTP status, retry hint)
        └── BreakerOpenError    the circuit breaker rejected the call without sending it

The CLI maps these to exit codes in one place (``attune_cli.cli.app``). Messages never contain a
secret: code that builds one from provider output must pass it through ``redact`` first.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class AttuneError(Exception):
    """Base of every error attune reports to a user."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AttuneError):
    """Bad input: a flag value, a file, a setting. Exit 2."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration file that cannot be read or holds an invalid value.

    Names the file, and where known the key and the bad value, so the user can fix it by hand.
    """

    def __init__(
        self,
        path: Path,
        problem: str,
        *,
        key: str | None = None,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        where = f"{path}: {key}" if key else str(path)
        shown = f" (got {value!r})" if key is not None and value is not None else ""
        super().__init__(f"{where}: {problem}{shown}", hint=hint)
        self.path = path
        self.key = key
        self.value = value


class InputFileError(UsageError):
    """A file named on the command line that is missing, unreadable, binary or malformed."""


class StoreVersionError(UsageError):
    """The telemetry store was written by a newer version of attune; it is left untouched."""


class PermissionsError(AttuneError):
    """A secrets file that others can read; refused as ssh refuses a loose private key."""

    exit_code = EXIT_USAGE


class OperationError(AttuneError):
    """The operation was attempted and failed. Exit 1."""


class ProviderError(OperationError):
    """A provider call that failed.

    Attributes:
        kind: a short classification (``rate_limit``, ``overloaded``, ``server_error``,
            ``timeout``, ``connection``, ``auth``, ``bad_request``, ``not_found``,
            ``too_large``, ``malformed_response``, ``stream_error`` …).
        status: the HTTP status, when a response arrived.
        retry_after_s: the server's hint of when to retry, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s


class BreakerOpenError(OperationError):
    """The circuit breaker for a provider/model is open; nothing was sent."""

    def __init__(self, key: str, retry_after_s: float) -> None:
        super().__init__(
            f"circuit open for {key}: recent calls failed; retry in {retry_after_s:.0f}s",
            hint="see `attune route breakers`, or `attune route breakers reset` to close it",
        )
        self.key = key
        self.retry_after_s = retry_after_s


def redact(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
