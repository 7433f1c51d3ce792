"""Deadlines that hold whatever a server sends, and however slowly.

httpx's timeouts are per socket operation: a server that sends one byte every few seconds, or a
keep-alive comment every second, never trips a read timeout and keeps a call alive forever.
Here every socket operation of an attempt waits at most ``min(its own timeout, the phase's limit,
the time left to the deadline)``, and fails as a timeout once the deadline has passed, so the
deadline is wall-clock whether the server is silent, slow with its headers, or trickling::

    AttemptLimits    how long one attempt may take, phase by phase (a frozen value)
    Budget           one attempt's limits in monotonic time; its read limit moves from the
                     first-byte phase to the between-reads phase once the headers arrived
    budget_scope     makes a Budget the current one (a context variable) for a ``with`` block
    DeadlineBackend  an httpcore network backend that applies the current Budget to every
                     connect, read and write (no Budget current: the plain timeouts)
    install          puts a DeadlineBackend under every transport of an ``httpx.Client``

The deadline travels in a context variable rather than the request because httpcore hands a
network stream only a timeout; a connection kept alive for the next attempt reads whichever
Budget is current when it is used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

if TYPE_CHECKING:
    import ssl

__all__ = [
    "AttemptLimits",
    "Budget",
    "DeadlineBackend",
    "budget_scope",
    "current_budget",
    "install",
]


@dataclass(frozen=True)
class AttemptLimits:
    """How long one attempt may take, phase by phase (seconds).

    Attributes:
        connect_s: to open a connection (TLS included).
        first_byte_s: from the request sent to the response's first bytes (its headers).
        between_reads_s: between two reads of the body (for a stream: between two chunks).
        write_s: to send the request.
        total_s: the time left to the whole call's deadline; nothing of the attempt outlives it.
    """

    connect_s: float
    first_byte_s: float
    between_reads_s: float
    write_s: float
    total_s: float

    def httpx_timeout(self) -> httpx.Timeout:
        """The per-operation timeouts httpx applies itself, none longer than ``total_s``."""
        total_s = max(self.total_s, 0.001)
        return httpx.Timeout(
            connect=min(self.connect_s, total_s),
            read=min(max(self.first_byte_s, self.between_reads_s), total_s),
            write=min(self.write_s, total_s),
            pool=min(self.connect_s, total_s),
        )

    def budget(self, clock: Callable[[], float] = time.monotonic) -> Budget:
        """A Budget for an attempt starting now."""
        return Budget(
            ends_at=clock() + max(self.total_s, 0.0),
            total_s=self.total_s,
            read_s=self.first_byte_s,
            between_reads_s=self.between_reads_s,
            clock=clock,
        )


@dataclass
class Budget:
    """One attempt's limits in monotonic time, as the network layer enforces them.

    Mutable on purpose: ``headers_arrived`` moves the read limit from the first-byte phase to
    the between-reads phase.

    Attributes:
        ends_at: the monotonic time the deadline passes.
        total_s: the attempt's whole budget (for messages).
        read_s: the longest one read may wait now.
        between_reads_s: the read limit once the headers arrived.
        clock: monotonic seconds (the one socket timeouts are measured in).
    """

    ends_at: float
    total_s: float
    read_s: float
    between_reads_s: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def left_s(self) -> float:
        """Seconds left to the deadline (0 or less once it passed)."""
        return self.ends_at - self.clock()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.left_s() <= 0

    def headers_arrived(self) -> None:
        """The response began: from now on a read may wait ``between_reads_s``."""
        self.read_s = self.between_reads_s

    def wait_s(self, timeout: float | None, phase_s: float | None = None) -> float:
        """How long the next socket operation may wait.

        Args:
            timeout: the operation's own timeout from httpcore (None: no limit).
            phase_s: the current phase's limit, when one applies.

        Returns:
            The wait in seconds; 0 or less once the deadline passed.
        """
        limits = [self.left_s()]
        limits += [limit for limit in (timeout, phase_s) if limit is not None]
        return min(limits)

    def passed_message(self) -> str:
        """What to say once the deadline passed."""
        return f"the {self.total_s:.3g} s left for the call ran out before the answer was complete"


_CURRENT: ContextVar[Budget | None] = ContextVar("attune_budget", default=None)


def current_budget() -> Budget | None:
    """The Budget of the attempt running in this context, None outside one."""
    return _CURRENT.get()


@contextmanager
def budget_scope(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` govern every socket operation of this context inside the block."""
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def _bounded(
    timeout: float | None,
    phase_s: float | None,
    error: type[httpcore.TimeoutException],
) -> tuple[Budget | None, float | None]:
    budget = _CURRENT.get()
    if budget is None:
        return None, timeout
    wait_s = budget.wait_s(timeout, phase_s)
    if wait_s <= 0 or math.isnan(wait_s):
        raise error(budget.passed_message())
    return budget, wait_s


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads and writes never outlive the current Budget."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _CURRENT.get()
        phase_s = budget.read_s if budget is not None else None
        budget, wait_s = _bounded(timeout, phase_s, httpcore.ReadTimeout)
        try:
            return self._inner.read(max_bytes, wait_s)
        except httpcore.ReadTimeout:
            if budget is not None and budget.expired():
                raise httpcore.ReadTimeout(budget.passed_message()) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        budget, wait_s = _bounded(timeout, None, httpcore.WriteTimeout)
        try:
            self._inner.write(buffer, wait_s)
        except httpcore.WriteTimeout:
            if budget is not None and budget.expired():
                raise httpcore.WriteTimeout(budget.passed_message()) from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        _, wait_s = _bounded(timeout, None, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, wait_s))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """An httpcore network backend whose streams honour the current Budget."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        _, wait_s = _bounded(timeout, None, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(
            host, port, timeout=wait_s, local_address=local_address, socket_options=socket_options
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        _, wait_s = _bounded(timeout, None, httpcore.ConnectTimeout)
        stream = self._inner.connect_unix_socket(
            path, timeout=wait_s, socket_options=socket_options
        )
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install(client: httpx.Client) -> httpx.Client:
    """Put a DeadlineBackend under every transport of ``client`` (proxies included).

    httpx builds its transports (and one per proxy from the environment) without a way to pass
    a network backend, so this reaches into ``httpx.HTTPTransport._pool``: httpcore's pools
    keep the backend they hand to each new connection in ``_network_backend``. Call it before
    the client makes its first request.

    Returns:
        ``client``, for chaining.

    Raises:
        RuntimeError: an httpx/httpcore release laid its transports out differently (a test
            runs this on every start, so an upgrade that breaks it fails loudly, not silently).
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(transport, httpx.HTTPTransport) or backend is None:
            raise RuntimeError(f"cannot install deadlines on {type(transport).__name__}")
        if not isinstance(backend, DeadlineBackend):
            pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
    return client
