"""The gateway's bridge from asyncio to attune's synchronous core.

The executor is synchronous (httpx.Client, SQLite), so each call runs on a worker thread and
talks back to the event loop through an ``asyncio.Queue``::

    event loop (Starlette)                    worker thread (core)
    ──────────────────────                    ────────────────────
    Gateway.start(call) ──────────────────▶   route_and_call(...)   routing, breaker,
                                              │                     retries, telemetry rows
    queue.get() ◀── call_soon_threadsafe ──── on_text(piece)        each piece as it arrives
    queue.get() ◀── future done ──────────── returns the LLMResponse (or raises)
    client gone: handle.cancel() ─────────▶   cancelled() is True at the next piece: the
                                              upstream response is closed, the attempt is
                                              recorded as ``cancelled``, CallCancelled raised

Every worker thread keeps its own executor, keep-alive HTTP client (no cookie jar: callers
do not share cookies) and telemetry store to route from (SQLite connections belong to one
thread; a team store is one PostgreSQL connection they take turns at, as the breakers' is,
so the server sees three connections from a gateway, not two per thread); they share one TLS
context, one routing cache, one circuit breaker and one telemetry
writer (``core.telemetry.writer.BatchWriter``): every row and every breaker
outcome of the process is written by that one thread, many per transaction, instead of fifty
threads taking turns at SQLite's write lock. An answer does not wait for its row's commit
(the next batch, milliseconds later); ``close`` writes every queued row before the process
ends. Nothing here decides anything: routing,
fallback, retries and recording are ``core.ask.route_and_call``'s.

A call that has not produced text yet notices a cancellation only when text arrives or the
attempt ends (a silent upstream is abandoned at the executor's own deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import httpx

    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.executor import ResilientExecutor
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.telemetry.writer import BatchWriter
    from attune_cli.core.workspace import Workspace
    from attune_cli.serve.shapes import GatewayRequest


ROUTING_CACHE_KIB = 256
"""The page cache of each worker thread's store connection, which only routing reads (the
rollups and the newest rows of a stage); the OS's file cache answers the rest."""


@dataclass(frozen=True)
class CallIntent:
    """What a call is about to do, for hooks that may refuse it (budgets, issue 15).

    Attributes:
        workflow: the workflow it is tagged with.
        stage: the stage it is tagged with.
        model: the model asked for, None when routing will choose.
        max_tokens: the most output tokens it may produce.
    """

    workflow: str
    stage: str
    model: str | None
    max_tokens: int


BeforeCall = Callable[[CallIntent], None]
"""Called before every call; raising ``CallRefused`` answers the client without calling anyone.
Budgets (issue 15) plug in here."""


class CallRefused(Exception):
    """A ``BeforeCall`` hook's refusal of a call.

    Attributes:
        status: the HTTP status for the client (429 for a budget spent, say).
        message: why, for the client.
        retry_after_s: when the call may be allowed, when known.
    """

    def __init__(self, message: str, *, status: int = 429, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass
class CallHandle:
    """One call running on a worker thread.

    ``events`` yields ``("text", str)`` for each piece as it arrives and then exactly one
    ``("end", outcome)``: the ``LLMResponse``, or the exception the call raised.

    Attributes:
        events: the queue the loop reads.
        first_model: the first model an attempt was made on, once known.
        current_model: the model of the attempt in flight (or the last one).
    """

    events: asyncio.Queue[tuple[str, Any]]
    first_model: str | None = None
    current_model: str | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """The client went away: abandon the call at its next piece of text."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def attempt(self, _provider: str, model: str) -> None:
        if self.first_model is None:
            self.first_model = model
        self.current_model = model

    @property
    def fallback(self) -> bool:
        """Whether the model answering now is not the first one tried."""
        return self.first_model is not None and self.current_model != self.first_model


class _Resources(threading.local):
    executor: ResilientExecutor | None = None
    store: TelemetryStore | None = None


class Gateway:
    """Runs calls through attune's core on worker threads; one per server process.

    Args:
        workspace: paths, config and registry.
        environ: the environment for keys and base URLs.
        before_call: a hook that may refuse a call before anything is routed or sent.
        threads: the most calls in flight at once; more wait for a free thread.
    """

    def __init__(
        self,
        workspace: Workspace,
        environ: Mapping[str, str],
        *,
        before_call: BeforeCall | None = None,
        threads: int = 64,
    ) -> None:
        self.workspace = workspace
        self.environ = dict(environ)
        self.before_call = before_call
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="attune-call")
        self._local = _Resources()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []
        self._ssl: ssl.SSLContext | None = None
        self._writer: BatchWriter | None = None
        self._breaker: CircuitBreaker | None = None
        self._team_store: TelemetryStore | None = None
        self.threads = threads
        from attune_cli.core.routing.cache import PerformanceCache

        # Routed calls rank models by figures read at most a second ago (``routing.cache``).
        self.routing_cache = PerformanceCache()

    def _http_client(self) -> httpx.Client:
        """A new HTTP client for one worker thread, which makes one call at a time.

        One client per thread rather than one pool for all: httpcore looks through every
        connection of a pool (a ``poll`` each) to place each request, so a pool of 64 cost
        more CPU per call than the rest of httpx. The threads share one TLS context.
        """
        from attune_cli.core.executor import Timeouts, make_client

        with self._lock:
            if self._ssl is None:
                import httpx

                self._ssl = httpx.create_ssl_context(trust_env=True)
            timeouts = Timeouts.from_config(self.workspace.config, self.workspace.paths.config_file)
            # A few connections: a fallback to another provider opens one more.
            client = make_client(
                timeouts, max_connections=4, keep_cookies=False, ssl_context=self._ssl
            )
            self._clients.append(client)
            return client

    def _shared(self) -> tuple[BatchWriter, CircuitBreaker]:
        """The process's telemetry writer and circuit breaker, made on first use.

        With a team store (``[store] url``), both live there, as ``attune ask``'s do: rows are
        written to PostgreSQL (to the local store while it cannot be reached, sent once it
        can), and breakers are shared with every machine of the team; when the server cannot
        be reached as the gateway starts, its breakers are the local ones.
        """
        with self._lock:
            if self._writer is None or self._breaker is None:
                from attune_cli.core.breaker.sqlite import CircuitBreaker
                from attune_cli.core.breaker.state import BreakerSettings
                from attune_cli.core.telemetry.store import Backend, store_location
                from attune_cli.core.telemetry.writer import BatchWriter

                workspace = self.workspace
                path = workspace.paths.telemetry_db
                config_file = workspace.paths.config_file
                settings = BreakerSettings.from_config(workspace.config, config_file)
                location = store_location(workspace)
                if location.backend is Backend.POSTGRES:
                    from attune_cli.core.breaker.postgres import PostgresBreaker
                    from attune_cli.core.telemetry.postgres import StoreUnreachableError
                    from attune_cli.core.telemetry.team_writer import TeamWriter

                    self._writer = TeamWriter(workspace, location.target)
                    try:
                        self._breaker = PostgresBreaker(
                            location.target, settings, writer=self._writer
                        )
                    except StoreUnreachableError:
                        self._breaker = CircuitBreaker(path, settings)
                else:
                    self._writer = BatchWriter(path)
                    self._breaker = CircuitBreaker(path, settings, writer=self._writer)
            return self._writer, self._breaker

    def routing_store(self) -> TelemetryStore:
        """A store to route from (and check budgets in): the team store when one is set and
        reachable, else the local one.

        The team store is one connection that every worker thread shares (its statements and
        transactions take turns: ``postgres._Serialized``), made on first use and closed by
        ``close``; with the breakers' one and the writer's, the gateway holds three
        connections to the server however many threads it runs. A local store is one per
        worker thread (SQLite connections belong to one thread), each a new one to close.
        """
        from attune_cli.core.telemetry.sqlite import TelemetryStore
        from attune_cli.core.telemetry.store import Backend, store_location

        location = store_location(self.workspace)
        if location.backend is Backend.POSTGRES:
            from attune_cli.core.errors import AttuneError
            from attune_cli.core.telemetry.postgres import PostgresCallStore

            with self._lock:
                if self._team_store is not None:
                    return self._team_store
                # The writer warns and keeps the rows when the server cannot be reached;
                # routing then reads the local history.
                with contextlib.suppress(AttuneError):
                    self._team_store = PostgresCallStore(location.target)
                    self._opened.append(self._team_store)
                    return self._team_store
        store = TelemetryStore.open(self.workspace)
        # Up to ``threads`` of these stay open; at SQLite's default 2 MB page cache each,
        # the server grew by megabytes per thousand routed calls as the caches filled.
        store.conn.execute(f"PRAGMA cache_size = -{ROUTING_CACHE_KIB}")
        return store

    @contextlib.contextmanager
    def reading_store(self) -> Iterator[TelemetryStore]:
        """A store to read from for a moment (``/v1/models``), on any thread: the shared team
        store (left open), else a new local one (closed after)."""
        store = self.routing_store()
        try:
            yield store
        finally:
            if store is not self._team_store:
                store.close()

    def _executor(self) -> tuple[ResilientExecutor, TelemetryStore]:
        local = self._local
        if local.executor is None or local.store is None:
            from attune_cli.core.executor import ResilientExecutor

            writer, breaker = self._shared()
            local.store = self.routing_store()
            local.executor = ResilientExecutor.from_workspace(
                self.workspace,
                breaker=breaker,
                store=writer,  # rows are queued; routing reads this thread's store
                environ=self.environ,
                client=self._http_client(),
            )
            with self._lock:
                if local.store is not self._team_store:
                    self._opened.append(local.store)
        return local.executor, local.store

    def start(
        self, request: GatewayRequest, *, workflow: str, stage: str, model: str | None
    ) -> CallHandle:
        """Start one call on a worker thread; read its events from the handle.

        Must be called from the event loop's thread.
        """
        loop = asyncio.get_running_loop()
        handle = CallHandle(events=asyncio.Queue())

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(handle.events.put_nowait, ("text", text))

        def work() -> LLMResponse:
            from attune_cli.core.ask import AskOptions, route_and_call

            if self.before_call is not None:
                self.before_call(CallIntent(workflow, stage, model, request.max_tokens))
            executor, store = self._executor()
            options = AskOptions(
                prompt=request.prompt,
                workflow=workflow,
                stage=stage,
                model=model,
                system=request.system,
                max_tokens=request.max_tokens,
                stream=request.stream,
            )
            return route_and_call(
                self.workspace,
                executor,
                store,
                options,
                on_text=on_text if request.stream else None,
                on_attempt=handle.attempt,
                messages=request.messages,
                cancelled=lambda: handle.cancelled,
                performance_cache=self.routing_cache,
            )

        future = loop.run_in_executor(self._pool, work)

        def finished(done: asyncio.Future[LLMResponse]) -> None:
            error = done.exception()
            handle.events.put_nowait(("end", error if error is not None else done.result()))

        # Runs on the loop after every on_text callback the thread scheduled before returning.
        future.add_done_callback(finished)
        return handle

    def close(self) -> None:
        """Wait for calls in flight, write every row they queued, then close every resource."""
        self._pool.shutdown(wait=True)
        with self._lock:
            if self._writer is not None:
                self._writer.close()  # returns once every queued row is written or spooled
            if self._breaker is not None:
                self._breaker.close()
            for resource in self._opened:
                # SQLite refuses a close from another thread than the opener's; every row
                # was committed by then, and the process is ending.
                with contextlib.suppress(Exception):
                    resource.close()
            self._opened.clear()
            self._team_store = None
            for client in self._clients:
                client.close()
            self._clients.clear()
