"""Bodies read with limits: bounded inflation, SSE line splitting, the one Retry-After clamp."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.executor import retry_after_s
from attune_cli.core.failures import RETRY_AFTER_CEILING_S, clamp_retry_after_s
from attune_cli.core.providers import CallFailed, ChatRequest, Endpoint, adapter_for
from attune_cli.core.providers.bodies import (
    PIECE_BYTES,
    BodyRefused,
    BodyTooLarge,
    iter_body,
    iter_lines,
    read_body,
    stream_limit_bytes,
)
from attune_cli.core.registry import load_registry


class Chunks(httpx.SyncByteStream):
    """A body that arrives in the given pieces, as from the network (not read in advance)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece


def streamed(pieces: list[bytes], encoding: str | None = None, status: int = 200) -> httpx.Response:
    headers = {"content-encoding": encoding} if encoding else {}
    return httpx.Response(status, headers=headers, stream=Chunks(pieces))


def test_gzip_and_deflate_decode_in_every_shape() -> None:
    two_members = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert read_body(streamed([two_members[:7], two_members[7:]], "gzip"), 100) == b"hello world"
    assert read_body(streamed([zlib.compress(b"wrapped")], "deflate"), 100) == b"wrapped"
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert read_body(streamed([raw.compress(b"raw") + raw.flush()], "deflate"), 100) == b"raw"
    assert read_body(streamed([b"plain"], "identity"), 100) == b"plain"


def test_a_gzip_bomb_is_inflated_a_piece_at_a_time_and_stopped_at_the_limit() -> None:
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    pieces: list[int] = []
    with pytest.raises(BodyTooLarge, match="larger than 1 MiB"):
        for piece in iter_body(streamed([bomb], "gzip"), 1024 * 1024):
            pieces.append(len(piece))
    # Never more than one piece inflated at once, and nothing past the limit.
    assert max(pieces) <= PIECE_BYTES
    assert sum(pieces) <= 1024 * 1024


def test_an_encoding_not_asked_for_or_broken_is_refused() -> None:
    with pytest.raises(BodyRefused, match="did not ask for"):
        read_body(streamed([b"x"], "br"), 100)
    with pytest.raises(BodyRefused, match="does not decompress"):
        read_body(streamed([b"not gzip at all"], "gzip"), 100)


def test_sse_lines_split_at_crlf_lf_and_cr_even_across_pieces() -> None:
    pieces = [b"data: a\r", b"\ndata: b\rdata: c\n\n", b"data: \xc3", b"\xa9"]
    assert list(iter_lines(iter(pieces))) == ["data: a", "data: b", "data: c", "", "data: é"]
    # Only CR and LF end a line in an event stream, not the other Unicode line breaks.
    assert list(iter_lines(iter(["a\u2028b\x0cc\n".encode()]))) == ["a\u2028b\x0cc"]


def adapter(api: str = "openai"):  # type: ignore[no-untyped-def]
    registry = load_registry({}, Path("config.toml"))
    provider = registry.providers[api]
    return adapter_for(Endpoint(provider, "http://127.0.0.1:9/v1", "sk-x", True))


def test_a_stream_longer_than_max_tokens_allows_fails_as_malformed() -> None:
    event = b"data: " + json.dumps({"choices": [{"delta": {"content": "x" * 1000}}]}).encode()
    events = [event + b"\n\n"] * (stream_limit_bytes(10) // len(event) + 2)
    body = Chunks(events)
    client = httpx.Client(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=body
            )
        )
    )
    texts: list[str] = []
    with pytest.raises(CallFailed) as caught:
        adapter().call(client, ChatRequest("gpt-5-mini", "hi", max_tokens=10), on_text=texts.append)
    assert caught.value.kind == "malformed_response"
    assert "larger than" in str(caught.value)
    assert body.sent < len(events)  # stopped reading at the limit
    assert sum(map(len, texts)) <= stream_limit_bytes(10)


def test_a_huge_error_body_keeps_its_status_kind_and_says_it_was_cut() -> None:
    page = b"<html>Bad Gateway" + b" " * (3 * 1024 * 1024)
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(502, content=page))
    )
    with pytest.raises(CallFailed) as caught:
        adapter().call(client, ChatRequest("gpt-5-mini", "hi"))
    assert caught.value.kind == "server_error" and caught.value.status == 502
    assert "only the first 2 MiB" in str(caught.value)


def test_retry_after_is_clamped_once_for_everyone() -> None:
    assert clamp_retry_after_s(1_000_000_000) == RETRY_AFTER_CEILING_S == 3600
    assert clamp_retry_after_s(-5) == 0
    assert clamp_retry_after_s(None) is None
    assert clamp_retry_after_s(float("inf")) is None
    assert retry_after_s({"retry-after": "1000000000"}, 0) == 3600
    assert retry_after_s({"retry-after-ms": "1e15"}, 0) == 3600
    assert retry_after_s({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 100.0) == 0
    settings = BreakerSettings()
    assert settings.open_period_s(0, 1_000_000_000) == 3600
    assert settings.open_period_s(0, None) == settings.open_base_s
