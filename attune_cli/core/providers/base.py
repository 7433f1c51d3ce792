"""What every provider adapter shares: the request, the answer, the failure, SSE and HTTP plumbing.

An adapter turns a ``ChatRequest`` into one HTTP request to its API, and the HTTP response (a
JSON body or a stream of server-sent events) into a ``Completion`` or a ``CallFailed``. It makes
exactly one attempt: retries, back-off, the circuit breaker and fallback belong to the executor.

Failure kinds (``CallFailed.kind``)::

    caller errors, never retried    bad_request (400, 422), auth (401), billing (402),
                                    permission (403), not_found (404), too_large (413)
    other 4xx                       client_error (retried only on ``x-should-retry: true``)
    transient, retried              timeout (408 and client timeouts), conflict (409),
                                    rate_limit (429), overloaded (529), server_error (5xx),
                                    connection (refused, reset, dropped mid-answer)
    the answer itself is broken     malformed_response (not the API's JSON or SSE)
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from attune_cli import __version__
from attune_cli.core.endpoints import Endpoint
from attune_cli.core.errors import ProviderError, redact
from attune_cli.core.providers.bodies import (
    ACCEPT_ENCODING,
    ERROR_LIMIT_BYTES,
    JSON_LIMIT_BYTES,
    BodyRefused,
    iter_body,
    iter_lines,
    read_body,
    read_prefix,
    stream_limit_bytes,
)
from attune_cli.core.providers.deadline import AttemptLimits, Budget, budget_scope

USER_AGENT = f"attune/{__version__}"
ERROR_TEXT_LIMIT = 300
"""Characters of a provider's error message kept in ours; enough to read, never a whole page."""

CALLER_ERROR_KINDS = frozenset(
    {"bad_request", "auth", "billing", "permission", "not_found", "too_large"}
)
RETRY_HEADERS = ("retry-after-ms", "retry-after", "x-should-retry")

AttemptWatcher = Callable[[str, str], None]
"""Told ``(provider, model)`` as each attempt begins (``watching_attempts``)."""

_WATCHER: ContextVar[AttemptWatcher | None] = ContextVar("attune_attempt_watcher", default=None)


@contextmanager
def watching_attempts(watcher: AttemptWatcher) -> Iterator[None]:
    """Tell ``watcher(provider, model)`` as each attempt made in this context begins.

    For a display of which model is being waited on (``attune ask``'s spinner): retries and
    fallbacks happen inside the executor, and each one is an adapter's ``call``.
    """
    token = _WATCHER.set(watcher)
    try:
        yield
    finally:
        _WATCHER.reset(token)


@dataclass(frozen=True)
class Message:
    """One turn of a conversation.

    Attributes:
        role: ``user`` or ``assistant``.
        content: its text.
    """

    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One prompt (or one conversation) for one model.

    Attributes:
        model: the model id as the provider knows it.
        prompt: the user message (ignored when ``messages`` is given).
        system: an optional system prompt.
        max_tokens: the most output tokens the model may produce.
        messages: the whole conversation, oldest first, ending with the user's turn; empty
            means one user turn holding ``prompt`` (what ``attune ask`` sends).
    """

    model: str
    prompt: str
    system: str | None = None
    max_tokens: int = 1024
    messages: tuple[Message, ...] = ()

    def turns(self) -> list[dict[str, str]]:
        """The conversation as the APIs' ``messages`` list (system prompt excluded)."""
        if self.messages:
            return [{"role": m.role, "content": m.content} for m in self.messages]
        return [{"role": "user", "content": self.prompt}]


class CallCancelled(Exception):
    """The caller stopped waiting (a gateway client that went away): the attempt is abandoned.

    Raised out of ``ResilientExecutor.execute`` once the attempt in flight was recorded with
    the error kind ``cancelled``, which counts against no model and no circuit.
    """


@dataclass(frozen=True)
class Completion:
    """A full answer from one attempt.

    Attributes:
        content: the text.
        input_tokens: prompt tokens the provider counted, None when it did not say.
        output_tokens: completion tokens the provider counted, None when it did not say.
        status: the HTTP status (200); None when no HTTP was involved (``claude -p``).
        stop_reason: why generation stopped (``end_turn``, ``stop``, ``max_tokens`` …).
        session_id: the provider's session id, when it gave one (Claude Code).
        reported_cost_usd: the price the provider itself reported (Claude Code's
            ``total_cost_usd``, the API-equivalent price of a subscription call).
        duration_ms: how long the provider said the run took.
    """

    content: str
    input_tokens: int | None
    output_tokens: int | None
    status: int | None = 200
    stop_reason: str | None = None
    session_id: str | None = None
    reported_cost_usd: float | None = None
    duration_ms: float | None = None


class CallFailed(ProviderError):
    """One attempt that failed, with what the executor needs to decide what to do next.

    Attributes:
        kind: the failure's kind (see the module docstring).
        status: the HTTP status, when a response arrived (200 for an error event mid-stream).
        headers: the response's retry hints (``retry-after-ms``, ``retry-after``,
            ``x-should-retry``), lower-case names, when a response arrived.
        unreachable: no connection could be made to the base URL (refused, DNS, unreachable
            network, connect timeout): nothing was sent, and no model behind it can answer.
        exhausts_endpoint: no model behind this endpoint can answer for now, though the
            endpoint itself is fine (the subscription's usage limit, or its login): the
            executor skips the endpoint without counting an outage against it.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message, kind=kind, status=status)
        self.headers: dict[str, str] = dict(headers or {})
        self.unreachable = unreachable
        self.exhausts_endpoint = False

    @property
    def caller_error(self) -> bool:
        """The request itself is wrong (bad input, key, permission, model name, size)."""
        return self.kind in CALLER_ERROR_KINDS

    @property
    def should_retry_header(self) -> bool | None:
        """The server's ``x-should-retry`` verdict, None when it gave none."""
        value = self.headers.get("x-should-retry", "").strip().lower()
        if value == "true":
            return True
        if value == "false":
            return False
        return None


def kind_for_status(status: int) -> str:
    """The failure kind of an HTTP error status."""
    kinds = {
        400: "bad_request",
        401: "auth",
        402: "billing",
        403: "permission",
        404: "not_found",
        408: "timeout",
        409: "conflict",
        413: "too_large",
        422: "bad_request",
        429: "rate_limit",
        529: "overloaded",
    }
    if status in kinds:
        return kinds[status]
    if status >= 500:
        return "server_error"
    if status >= 400:
        # Not one of the statuses that say "your request is wrong": retried only on the
        # server's x-should-retry, and another model may still answer.
        return "client_error"
    return "malformed_response"


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """Split server-sent event lines into ``(event, data)`` pairs.

    Follows the WHATWG event-stream rules that matter here: ``data`` lines of one event are
    joined with newlines, a blank line ends an event, lines starting with ``:`` are comments.
    """
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


class StreamParser(ABC):
    """Turns one provider's SSE events into text deltas and, at the end, a ``Completion``."""

    @abstractmethod
    def feed(self, event: str | None, data: str) -> str | None:
        """Take one event; return the text it adds, if any.

        Raises:
            CallFailed: the event is an error event, or its data is not the API's JSON.
        """

    @abstractmethod
    def finish(self) -> Completion:
        """The full answer once the stream ended.

        Raises:
            CallFailed: the stream ended before the API's end-of-message marker.
        """


class ProviderAdapter(ABC):
    """One API's request format, response format and error format."""

    api: ClassVar[str]

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        # (client, URL, headers): what every request through that client starts from.
        self._prepared: tuple[httpx.Client, httpx.URL, list[tuple[bytes, bytes]]] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    @abstractmethod
    def url(self) -> str:
        """The URL to POST the request to."""

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """Request headers, authentication included."""

    @abstractmethod
    def body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``."""

    @abstractmethod
    def parse_message(self, data: Any) -> Completion:
        """A ``Completion`` from a non-streamed JSON answer.

        Raises:
            CallFailed: ``data`` is not the API's message shape (kind ``malformed_response``).
        """

    @abstractmethod
    def stream_parser(self) -> StreamParser:
        """A fresh parser for one streamed answer."""

    @abstractmethod
    def error_kind_and_message(self, data: Any, status: int) -> tuple[str, str]:
        """The failure kind and the provider's message from an error body or error event."""

    def call(
        self,
        client: httpx.Client,
        request: ChatRequest,
        *,
        stream: bool = True,
        on_text: Callable[[str], None] | None = None,
        limits: AttemptLimits | None = None,
        expired: Callable[[], bool] | None = None,
    ) -> Completion:
        """Make one attempt.

        Args:
            client: the shared client (keep-alive, pool); made by ``make_client`` so that
                ``limits`` hold on every socket read (a plain client gets httpx's timeouts).
            request: what to ask.
            stream: ask for server-sent events so text arrives as it is generated.
            on_text: called with each piece of text as it arrives.
            limits: this attempt's timeouts and the time left to the call's deadline; the
                client's own timeouts when None.
            expired: polled between streamed events; when it turns true the attempt stops
                with a ``timeout`` (the executor's own clock says the deadline passed).

        Returns:
            The full answer.

        Raises:
            CallFailed: anything that is not a full answer, classified.
        """
        watcher = _WATCHER.get()
        if watcher is not None:
            watcher(self.name, request.model)
        http_request = self._http_request(
            client,
            self.body(request, stream=stream),
            limits.httpx_timeout() if limits is not None else client.timeout,
        )
        if limits is None:
            return self._send(client, http_request, stream, on_text, expired, request.max_tokens)
        with budget_scope(limits.budget()) as budget:
            return self._send(
                client, http_request, stream, on_text, expired, request.max_tokens, budget
            )

    def _http_request(
        self, client: httpx.Client, body: dict[str, Any], timeout: httpx.Timeout
    ) -> httpx.Request:
        """The POST of one attempt: ``client.build_request`` with its JSON, made cheaper.

        ``build_request`` parses the URL and merges the client's headers into the adapter's
        on every request (a twentieth of the gateway's CPU per call, issue 16); both are the same
        for every request through one client (attune's clients have no base URL or query
        parameters and never change their headers), so they are made once per client. A
        client holding cookies a response set takes ``build_request``, which sends them.
        """
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if client.cookies:
            return client.build_request(
                "POST",
                self.url(),
                headers={**self.headers(), "accept-encoding": ACCEPT_ENCODING},
                content=content.encode(),
                timeout=timeout,
            )
        prepared = self._prepared
        if prepared is None or prepared[0] is not client:
            headers = httpx.Headers(client.headers)
            headers.update({**self.headers(), "accept-encoding": ACCEPT_ENCODING})
            prepared = self._prepared = (client, httpx.URL(self.url()), headers.raw)
        return httpx.Request(
            "POST",
            prepared[1],
            headers=prepared[2],
            content=content.encode(),
            extensions={"timeout": timeout.as_dict()},
        )

    def _send(
        self,
        client: httpx.Client,
        http_request: httpx.Request,
        stream: bool,
        on_text: Callable[[str], None] | None,
        expired: Callable[[], bool] | None,
        max_tokens: int,
        budget: Budget | None = None,
    ) -> Completion:
        try:
            response = client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._transport_failure(exc, "timeout") from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, "connection") from None
        if budget is not None:
            budget.headers_arrived()
        try:
            if response.status_code != 200:
                raise self._http_failure(response)
            content_type = response.headers.get("content-type", "")
            if stream and content_type.startswith("text/event-stream"):
                return self._consume_stream(response, on_text, expired, max_tokens)
            body = read_body(response, JSON_LIMIT_BYTES)
            completion = self.parse_message(self._json(body, response.status_code))
            if on_text and completion.content:
                on_text(completion.content)
            return completion
        except BodyRefused as exc:
            # Past a limit, or an encoding that was not asked for: a broken answer, whatever
            # the model was saying (an outage-class failure, retried like one).
            raise self.failure(f"{exc}", kind="malformed_response", status=200) from None
        except httpx.TimeoutException as exc:
            raise self._transport_failure(exc, "timeout") from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc, "connection") from None
        finally:
            response.close()

    def _consume_stream(
        self,
        response: httpx.Response,
        on_text: Callable[[str], None] | None,
        expired: Callable[[], bool] | None,
        max_tokens: int,
    ) -> Completion:
        parser = self.stream_parser()
        lines = iter_lines(iter_body(response, stream_limit_bytes(max_tokens)))
        for event, data in iter_sse(lines):
            text = parser.feed(event, self._scrub(data))
            if text and on_text:
                on_text(text)
            if expired and expired():
                raise self.failure("the overall deadline passed mid-answer", kind="timeout")
        return parser.finish()

    def failure(
        self,
        problem: str,
        *,
        kind: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        unreachable: bool = False,
    ) -> CallFailed:
        """A ``CallFailed`` naming this provider, with any key scrubbed from the text."""
        text = redact(f"{self.name}: {problem}", [self.endpoint.api_key or ""])
        return CallFailed(text, kind=kind, status=status, headers=headers, unreachable=unreachable)

    def stream_error(self, data: Any) -> CallFailed:
        """The failure for an error event that arrived after HTTP 200."""
        kind, text = self.error_kind_and_message(data, 200)
        return self.failure(f"error event in the stream: {text}", kind=kind, status=200)

    def stream_payload(self, data: str, what: str) -> dict[str, Any]:
        """The JSON object in one streamed ``data`` field.

        Args:
            data: the event's data, already scrubbed of the key.
            what: what the API calls one streamed piece (``event``, ``chunk``), for the message.

        Raises:
            CallFailed: ``data`` is not JSON, or not a JSON object (kind ``malformed_response``).
        """
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's limit
            raise self.failure(
                f"a streamed {what} is not JSON: {data[:120]!r}",
                kind="malformed_response",
                status=200,
            ) from None
        if not isinstance(payload, dict):
            raise self.failure(
                f"a streamed {what} is not a JSON object", kind="malformed_response", status=200
            )
        return payload

    def _scrub(self, text: str) -> str:
        """``text`` without this endpoint's key.

        Applied to what the server sent before any of it is parsed or cut short for a
        message: ``failure`` redacts the whole key, but a key that a length limit cut in two
        would slip past it.
        """
        return redact(text, [self.endpoint.api_key or ""])

    def _scrub_bytes(self, raw: bytes) -> bytes:
        key = self.endpoint.api_key
        return raw.replace(key.encode(), b"***") if key else raw

    def _json(self, raw: bytes, status: int) -> Any:
        raw = self._scrub_bytes(raw)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's limit
            raise self.failure(
                f"HTTP {status} with a body that is not JSON: {_snippet(raw)}",
                kind="malformed_response",
                status=status,
            ) from None

    def _http_failure(self, response: httpx.Response) -> CallFailed:
        status = response.status_code
        hints = {name: response.headers[name] for name in RETRY_HEADERS if name in response.headers}
        # Only the start of an error body is ever shown: the rest is not even read.
        try:
            raw, cut = read_prefix(response, ERROR_LIMIT_BYTES)
        except BodyRefused:
            raw, cut = b"", False
        content = self._scrub_bytes(raw)
        try:
            data: Any = json.loads(content)
        except (ValueError, RecursionError):
            data = None
        if data is None:
            kind, text = (
                kind_for_status(status),
                _snippet(content) or response.reason_phrase,
            )
        else:
            kind, text = self.error_kind_and_message(data, status)
        if cut:
            text += f" … (only the first {ERROR_LIMIT_BYTES // 2**20} MiB of the body was read)"
        return self.failure(
            f"HTTP {status} {kind}: {text}", kind=kind, status=status, headers=hints
        )

    def _transport_failure(self, exc: httpx.HTTPError, kind: str) -> CallFailed:
        # httpx messages name the host and the failure, never headers, so no key can leak.
        what = "timed out" if kind == "timeout" else "connection failed"
        detail = str(exc) or type(exc).__name__
        # Only the connect phase says the endpoint is unreachable; a connection that was made
        # and then dropped or went silent says something about this one request.
        unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return self.failure(
            f"{what} ({detail}) at {self.endpoint.base_url}", kind=kind, unreachable=unreachable
        )


def error_text(data: Any) -> tuple[str | None, str]:
    """The ``(type, message)`` of an error JSON in either API's shape, or of a bare string.

    Anthropic: ``{"type": "error", "error": {"type": ..., "message": ...}}``; OpenAI:
    ``{"error": {"type": ..., "code": ..., "message": ...}}``; Ollama and some proxies:
    ``{"error": "text"}``.
    """
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, str):
            return None, inner[:ERROR_TEXT_LIMIT]
        if isinstance(inner, dict):
            kind = inner.get("type") or inner.get("code")
            message = inner.get("message") or ""
            return (str(kind) if kind else None), str(message)[:ERROR_TEXT_LIMIT]
    return None, _snippet(json.dumps(data).encode())


def as_token_count(value: Any) -> int | None:
    """A token count from a usage field, None when absent or not a whole number."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:ERROR_TEXT_LIMIT]
