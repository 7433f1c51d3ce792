"""Serving the app with uvicorn: the listening socket, workers and graceful shutdown.

The socket is bound here, before uvicorn starts, so ``--port 0`` works and the address printed
is the one listening. On SIGTERM or Ctrl-C uvicorn stops accepting, lets requests in flight
finish for up to ``grace_s`` seconds, then the app's lifespan waits for the calls' worker
threads, so every attempt made is a telemetry row before the process exits.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attune_cli.core.workspace import Workspace


@dataclass(frozen=True)
class ServeOptions:
    """What ``attune serve`` was asked to do.

    Attributes:
        host: the address to listen on.
        port: the port (0: any free one).
        workers: processes; more than one runs the app from ``app_from_environment``.
        require_token: serve clients off this machine when they send the gateway's token.
        grace_s: how long requests in flight may take to finish on shutdown.
    """

    host: str = "127.0.0.1"
    port: int = 4680
    workers: int = 1
    require_token: bool = False
    grace_s: float = 30.0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv6 when the host is an IPv6 address).

    Raises:
        OperationError: the address is taken or cannot be bound.
    """
    from attune_cli.core.errors import OperationError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a streamed piece must not wait 40 ms for Nagle.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OperationError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port, or stop what is using it",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(workspace: Workspace, options: ServeOptions, *, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGTERM or Ctrl-C.

    Args:
        workspace: paths, config and registry.
        options: host, port, workers, token, grace period.
        on_ready: told the base URL once the socket listens.

    Raises:
        OperationError: the address cannot be bound, or the token file cannot be made.
    """
    import os

    import uvicorn

    from attune_cli.serve.access import AccessPolicy, load_or_create_token
    from attune_cli.serve.app import create_app

    token = load_or_create_token(workspace.paths.config_dir) if options.require_token else None
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    on_ready(f"http://{shown}:{port}")
    common = {
        "log_level": "warning",
        "access_log": False,  # a request line is enough to leak a prompt's shape; keys never
        "timeout_graceful_shutdown": options.grace_s,
        "lifespan": "on",
    }
    if options.workers > 1:
        os.environ["ATTUNE_SERVE_REQUIRE_TOKEN"] = "1" if options.require_token else "0"
        # uvicorn.run binds the workers to the socket already listening (its fd).
        uvicorn.run(
            "attune_cli.serve.app:app_from_environment",
            factory=True,
            workers=options.workers,
            fd=sock.fileno(),
            **common,  # type: ignore[arg-type]
        )
        return
    app = create_app(workspace, access=AccessPolicy(token))
    config = uvicorn.Config(app, **common)  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[sock])
