"""The ASGI application: OpenAI- and Anthropic-shaped HTTP over the ``Gateway``.

Routes::

    POST /v1/chat/completions   OpenAI chat completions, JSON or SSE
    POST /v1/messages           Anthropic Messages, JSON or SSE
    GET  /v1/models             the registry's models and the routing aliases (OpenAI list shape)

A streamed call sends its headers only once the first piece of text arrives (or the call
ends), so a call that fails before answering gets a real HTTP status (429 with
``retry-after``, 503 for an open circuit …) rather than an error hidden in a 200 stream; after
that, each piece goes out as it arrives and a failure is the API's error event. Headers say who
answered: ``x-attune-model``, ``x-attune-provider`` and ``x-attune-fallback``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute

from attune_cli.serve.access import AccessPolicy
from attune_cli.serve.gateway import BeforeCall, CallHandle, CallRefused, Gateway
from attune_cli.serve.shapes import (
    Api,
    BadRequest,
    Failure,
    GatewayRequest,
    Shape,
    failure_of,
    parse_request,
    parse_route,
)

if TYPE_CHECKING:
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.workspace import Workspace

MAX_BODY_BYTES = 4 * 2**20
"""The largest request body read (4 MiB); a bigger one is refused unread with a 400 in the
caller's API shape (issue 16 asks for a 400, the status every SDK turns into its own
bad-request error; a 413 reached the openai SDK only as a generic status error)."""

WORKFLOW_HEADER = "x-attune-workflow"
STAGE_HEADER = "x-attune-stage"
DEFAULT_WORKFLOW = "gateway"
DEFAULT_STAGE = "general"


def create_app(
    workspace: Workspace,
    *,
    environ: Mapping[str, str] | None = None,
    access: AccessPolicy | None = None,
    before_call: BeforeCall | None = None,
    threads: int = 64,
) -> Starlette:
    """The gateway as an ASGI application.

    Args:
        workspace: paths, config and registry (keys and base URLs come from ``environ``).
        environ: the environment; ``os.environ`` when None.
        access: who may call; loopback clients only when None.
        before_call: a hook that may refuse a call before anything is sent (budgets).
        threads: the most calls in flight at once.
    """
    gateway = Gateway(
        workspace,
        os.environ if environ is None else environ,
        before_call=before_call,
        threads=threads,
    )
    server = _Server(gateway, access or AccessPolicy())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Calls still running finish and write their rows before the process ends.
            gateway.close()

    app = Starlette(
        routes=[
            HttpRoute("/v1/chat/completions", server.openai, methods=["POST"]),
            HttpRoute("/v1/messages", server.anthropic, methods=["POST"]),
            HttpRoute("/v1/models", server.models, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app


def app_from_environment() -> Starlette:
    """The app for ``uvicorn --factory`` (``attune serve --workers N``): settings from the
    environment (``ATTUNE_HOME`` …, ``ATTUNE_SERVE_REQUIRE_TOKEN=1``)."""
    from attune_cli.core.workspace import Workspace
    from attune_cli.serve.access import load_or_create_token

    workspace = Workspace.load()
    token = None
    if os.environ.get("ATTUNE_SERVE_REQUIRE_TOKEN") == "1":
        token = load_or_create_token(workspace.paths.config_dir)
    return create_app(workspace, access=AccessPolicy(token))


class _Server:
    def __init__(self, gateway: Gateway, access: AccessPolicy) -> None:
        self.gateway = gateway
        self.access = access

    async def openai(self, request: Request) -> Response:
        return await self._call(request, Api.OPENAI)

    async def anthropic(self, request: Request) -> Response:
        return await self._call(request, Api.ANTHROPIC)

    async def models(self, request: Request) -> Response:
        refused = self._refusal(request, Shape(Api.OPENAI))
        if refused is not None:
            return refused
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(self._model_list))

    def _model_list(self) -> dict[str, Any]:
        from attune_cli.core.routing import AdaptiveModelRouter

        workspace = self.gateway.workspace
        data: list[dict[str, Any]] = [
            {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}
            for model in sorted(workspace.registry.models.values(), key=lambda m: m.id)
        ]
        with self.gateway.reading_store() as store:  # the team store's stages, when one is set
            router = AdaptiveModelRouter.from_workspace(
                workspace, store, environ=self.gateway.environ
            )
            stages = router.get_routing_stats(None).stages
        pairs = sorted({(s.workflow, s.stage) for s in stages if s.workflow and s.stage})
        data += [
            {"id": f"attune/{wf}/{st}", "object": "model", "created": 0, "owned_by": "attune"}
            for wf, st in pairs
        ]
        return {"object": "list", "data": data}

    def _refusal(self, request: Request, shape: Shape) -> Response | None:
        host = request.client.host if request.client else None
        refused = self.access.refusal(host, request.headers)
        if refused is None:
            return None
        status, message = refused
        return JSONResponse(shape.error_document(status, message), status_code=status)

    async def _call(self, request: Request, api: Api) -> Response:
        shape = Shape(api)
        refused = self._refusal(request, shape)
        if refused is not None:
            return refused
        try:
            raw = await _read_body(request)
            call = parse_request(api, raw)
            route = parse_route(call.model)
            workflow = route.workflow or _label(request, WORKFLOW_HEADER, DEFAULT_WORKFLOW)
            stage = route.stage or _label(request, STAGE_HEADER, DEFAULT_STAGE)
        except BadRequest as exc:
            return _error(shape, Failure(exc.status, "bad_request", exc.message))
        except ClientDisconnect:
            return Response(status_code=400)
        handle = self.gateway.start(call, workflow=workflow, stage=stage, model=route.model)
        if not call.stream:
            _kind, outcome = await _next_end(handle)
            return self._answer(shape, handle, outcome)
        return await self._stream(shape, call, handle)

    def _answer(self, shape: Shape, handle: CallHandle, outcome: Any) -> Response:
        if isinstance(outcome, BaseException):
            return _error(shape, _failure_of_exception(outcome))
        response: LLMResponse = outcome
        if not response.success:
            return _error(shape, failure_of(response))
        return JSONResponse(shape.message(response), headers=_who(response.model, response))

    async def _stream(self, shape: Shape, call: GatewayRequest, handle: CallHandle) -> Response:
        kind, value = await handle.events.get()
        if kind == "end":
            if isinstance(value, BaseException) or not value.success:
                return self._answer(shape, handle, value)
            # A whole answer with no text along the way (an empty answer): one short stream.
            response: LLMResponse = value
            body = shape.stream_start(response.model)
            if response.content:
                body += shape.stream_text(response.model, response.content)
            body += shape.stream_end(response, include_usage=call.include_usage)
            return Response(
                body, media_type="text/event-stream", headers=_who(response.model, response)
            )
        model = handle.current_model or call.model
        first_text: str = value

        async def events() -> AsyncIterator[bytes]:
            finished = False
            try:
                yield shape.stream_start(model) + shape.stream_text(model, first_text)
                while True:
                    kind, item = await handle.events.get()
                    if kind == "text":
                        yield shape.stream_text(model, item)
                        continue
                    finished = True
                    if isinstance(item, BaseException):
                        yield shape.stream_error(_failure_of_exception(item))
                    elif item.success:
                        yield shape.stream_end(item, include_usage=call.include_usage)
                    else:
                        yield shape.stream_error(failure_of(item))
                    return
            finally:
                if not finished:
                    # The client went away mid-answer: stop the upstream call too.
                    handle.cancel()

        headers = {
            "x-attune-model": model,
            "x-attune-fallback": "true" if handle.fallback else "false",
            "cache-control": "no-cache",
        }
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _next_end(handle: CallHandle) -> tuple[str, Any]:
    while True:
        kind, value = await handle.events.get()
        if kind == "end":
            return kind, value


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> BadRequest:
    return BadRequest(
        f"the request body is over {MAX_BODY_BYTES // 2**20} MiB; send a shorter conversation"
    )


def _label(request: Request, header: str, default: str) -> str:
    from attune_cli.core.safe_text import unsafe_characters

    value = request.headers.get(header, "").strip()
    if not value:
        return default
    if unsafe_characters(value) or len(value) > 200:
        raise BadRequest(f"{header}: must be a short name without control characters")
    return value


def _who(model: str, response: LLMResponse) -> dict[str, str]:
    return {
        "x-attune-model": model,
        "x-attune-provider": response.provider,
        "x-attune-fallback": "true" if response.fallback_used else "false",
    }


def _failure_of_exception(exc: BaseException) -> Failure:
    from attune_cli.core.errors import AttuneError, ConfigError, OperationError, UsageError

    if isinstance(exc, CallRefused):
        return Failure(exc.status, "refused", exc.message, exc.retry_after_s)
    if isinstance(exc, UsageError):
        return Failure(404, "not_found", str(exc))
    if isinstance(exc, ConfigError):
        return Failure(500, "config", str(exc))
    from attune_cli.core.spend.budgets import BudgetExceeded

    if isinstance(exc, BudgetExceeded):
        # Not a 429 or 5xx: SDKs retry those, and a spent budget stays spent until it resets.
        return Failure(402, "budget_exceeded", str(exc))
    if isinstance(exc, OperationError):
        return Failure(503, "unavailable", str(exc))
    if isinstance(exc, AttuneError):
        return Failure(500, "error", str(exc))
    return Failure(500, "internal", f"attune serve: {type(exc).__name__}")


def _error(shape: Shape, failure: Failure) -> Response:
    return JSONResponse(
        shape.error_document(failure.status, failure.message, failure.kind),
        status_code=failure.status,
        headers=failure.headers(),
    )
