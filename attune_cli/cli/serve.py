"""``attune serve``: the local OpenAI- and Anthropic-compatible gateway; ``attune serve token``.

Starlette and uvicorn (the ``serve`` extra) are imported only when the gateway starts.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(
    help="Serve a local OpenAI- and Anthropic-compatible gateway: every call routed, "
    "protected, retried and recorded.",
    no_args_is_help=False,
    invoke_without_command=True,
)

EXTRA_HINT = "install the extra: pip install 'attune-cli[serve]'"


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on.", metavar="HOST")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0: any free port).", min=0, max=65535)
    ] = 4680,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.", min=1, max=64)] = 1,
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token",
            help="Serve clients off this machine when they send the token "
            "`attune serve token` prints (loopback clients are always served).",
        ),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="Seconds requests in flight may take to finish on SIGTERM or Ctrl-C.",
            min=0,
            metavar="S",
        ),
    ] = 30.0,
) -> None:
    """Serve the gateway until SIGTERM or Ctrl-C.

    Point an SDK at it: OPENAI_BASE_URL=http://127.0.0.1:4680/v1 or
    ANTHROPIC_BASE_URL=http://127.0.0.1:4680. Use attune/WORKFLOW/STAGE as the model to
    route, or a model id to call it as asked.
    """
    if ctx.invoked_subcommand is not None:
        return
    from attune_cli.core.errors import OperationError
    from attune_cli.core.workspace import Workspace

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise OperationError("attune serve needs Starlette and uvicorn", hint=EXTRA_HINT) from None
    from attune_cli.serve.server import ServeOptions
    from attune_cli.serve.server import serve as run

    workspace = Workspace.load()
    options = ServeOptions(
        host=host, port=port, workers=workers, require_token=require_token, grace_s=grace
    )

    def ready(url: str) -> None:
        sys.stderr.write(
            f"attune serve: listening on {url}\n"
            f"  OPENAI_BASE_URL={url}/v1  ANTHROPIC_BASE_URL={url}\n"
        )
        sys.stderr.flush()

    run(workspace, options, on_ready=ready)


@app.command("token")
def token() -> None:
    """Print the gateway's bearer token (made on first use, stored 0600)."""
    from attune_cli.core.workspace import Workspace
    from attune_cli.serve.access import load_or_create_token

    workspace = Workspace.load()
    sys.stdout.write(load_or_create_token(workspace.paths.config_dir) + "\n")
