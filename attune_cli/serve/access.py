"""Who may use the gateway: loopback clients always; others only with ``--require-token``.

The gateway calls providers with attune's own stored credentials, so whoever reaches it spends
the owner's money. By default only loopback clients (127.0.0.0/8, ::1) are served. With
``--require-token`` a client elsewhere must send the gateway's token (``attune serve token``,
stored 0600 beside ``config.toml``) as ``Authorization: Bearer …`` or ``x-api-key``. Whatever
key a client sends is only compared, never stored, logged or forwarded.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TOKEN_FILE = "serve-token"


def token_path(config_dir: Path) -> Path:
    """Where the gateway's token is kept."""
    return config_dir / TOKEN_FILE


def load_or_create_token(config_dir: Path) -> str:
    """The gateway's token, made (0600, in a 0700 folder) on first use.

    Raises:
        OperationError: the file cannot be written or read.
    """
    from attune_cli.core.errors import OperationError
    from attune_cli.core.paths import ensure_private_dir

    path = token_path(config_dir)
    ensure_private_dir(config_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise OperationError(f"cannot write {path}: {exc.strerror}") from None
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"attune-{secrets.token_urlsafe(32)}\n")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise OperationError(f"cannot read {path}: {exc.strerror}") from None
    if not token:
        raise OperationError(f"{path} is empty", hint="delete it; `attune serve token` makes one")
    return token


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine's loopback."""
    if not host:
        return False
    return _is_loopback(host)


@functools.lru_cache(maxsize=1024)
def _is_loopback(host: str) -> bool:
    # Asked on every request, about the same few addresses: parsed once each.
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """Loopback clients are served; others only with the token, when one is required.

    Attributes:
        token: the token clients elsewhere must send; None serves loopback clients only.
    """

    token: str | None = None

    def refusal(self, host: str | None, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """Why a client is refused (status, message), or None when it is served."""
        if is_loopback(host):
            return None
        if self.token is None:
            return 403, (
                "attune serve accepts only clients on this machine; start it with "
                "--require-token to accept others"
            )
        sent = _sent_token(headers)
        if sent is None or not hmac.compare_digest(sent.encode(), self.token.encode()):
            return 401, "a valid gateway token is required (`attune serve token` prints it)"
        return None


def _sent_token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None
