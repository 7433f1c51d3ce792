"""Response bodies read with limits: what a server sends never decides how much memory we use.

A body is decoded here rather than by httpx so that decompression is bounded too: httpx inflates
each network chunk in one call, and 64 KiB of gzip can become 64 MiB; a gzip bomb of about 1 MB
on the wire became 1 GiB of text and 3.2 GB of memory. Each ``zlib`` call here produces at most
``PIECE_BYTES``, and the running total of *decoded* bytes is checked against the limit before
more is inflated::

    JSON_LIMIT_BYTES          a whole (non-streamed) answer
    ERROR_LIMIT_BYTES         an error body (only its start is ever shown)
    stream_limit_bytes(n)     a streamed answer of at most n tokens: 16 bytes a token + 1 MiB
                              (events carry JSON around each token; generous on purpose)

Only ``gzip`` and ``deflate`` are asked for (``ACCEPT_ENCODING``) and decoded; a body in any
other encoding is refused as ``BodyRefused``.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterator
from typing import Protocol

import httpx

__all__ = [
    "ACCEPT_ENCODING",
    "ERROR_LIMIT_BYTES",
    "JSON_LIMIT_BYTES",
    "BodyRefused",
    "BodyTooLarge",
    "iter_body",
    "iter_lines",
    "read_body",
    "read_prefix",
    "stream_limit_bytes",
]

MIB = 1024 * 1024
JSON_LIMIT_BYTES = 8 * MIB
ERROR_LIMIT_BYTES = 2 * MIB
PIECE_BYTES = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def stream_limit_bytes(max_tokens: int) -> int:
    """The most decoded bytes a streamed answer of ``max_tokens`` tokens may take."""
    return 16 * max(max_tokens, 0) + MIB


class BodyRefused(Exception):
    """A body that will not be read: too large, or in an encoding attune did not ask for."""


class BodyTooLarge(BodyRefused):
    """More decoded bytes than the limit.

    Attributes:
        limit_bytes: the limit that was passed.
    """

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the response body is larger than {_size(limit_bytes)} once decoded")
        self.limit_bytes = limit_bytes


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        yield from ()


class _Inflate:
    """gzip (any number of members) or deflate (zlib-wrapped or raw), ``PIECE_BYTES`` at a time."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self.inflater = zlib.decompressobj(self.wbits)
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self.inflater.eof:
                if not data.strip(b"\0"):
                    return  # padding after the last member
                # Another gzip member follows (concatenated gzip is valid).
                self.inflater = zlib.decompressobj(self.wbits)
            try:
                piece = self.inflater.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                if self.encoding == "deflate" and not self.started:
                    # Some servers send raw deflate without the zlib wrapper.
                    self.wbits = -zlib.MAX_WBITS
                    self.inflater = zlib.decompressobj(self.wbits)
                    self.started = True
                    continue
                raise BodyRefused(f"the {self.encoding} body does not decompress ({exc})") from None
            self.started = True
            if piece:
                yield piece
            data = self.inflater.unused_data if self.inflater.eof else self.inflater.unconsumed_tail

    def flush(self) -> Iterator[bytes]:
        piece = self.inflater.flush()
        if piece:
            yield piece


def _decoder(encoding: str) -> _Decoder:
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip"):
        return _Inflate("gzip")
    if encoding == "deflate":
        return _Inflate("deflate")
    raise BodyRefused(
        f"the response body is in an encoding attune did not ask for ({encoding[:40]!r})"
    )


def iter_body(response: httpx.Response, limit_bytes: int) -> Iterator[bytes]:
    """``response``'s decoded body, piece by piece, never more than ``limit_bytes`` in all.

    Args:
        response: a response opened with ``stream=True`` whose body was not read yet.
        limit_bytes: the most decoded bytes to accept.

    Raises:
        BodyTooLarge: the decoded body would pass ``limit_bytes`` (nothing past it is decoded).
        BodyRefused: an encoding that was not asked for, or a body that does not decompress.
        httpx.TransportError: the network failed while reading (timeouts included).
    """
    if response.is_stream_consumed:
        # Built in memory (httpx.MockTransport reads such a body, and decodes it, at once).
        yield response.content[:limit_bytes]
        if len(response.content) > limit_bytes:
            raise BodyTooLarge(limit_bytes)
        return
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    # Encodings apply in the order listed, so they come off in reverse.
    decoders = [_decoder(coding) for coding in reversed(codings) if coding]
    pieces: Iterator[bytes] = response.iter_raw()
    for decoder in decoders:
        pieces = _decoded(pieces, decoder)
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > limit_bytes:
            raise BodyTooLarge(limit_bytes)
        yield piece


def _decoded(pieces: Iterator[bytes], decoder: _Decoder) -> Iterator[bytes]:
    for piece in pieces:
        yield from decoder.feed(piece)
    yield from decoder.flush()


def read_body(response: httpx.Response, limit_bytes: int) -> bytes:
    """``response``'s whole decoded body, at most ``limit_bytes`` (see ``iter_body``)."""
    return b"".join(iter_body(response, limit_bytes))


def read_prefix(response: httpx.Response, limit_bytes: int) -> tuple[bytes, bool]:
    """The first ``limit_bytes`` of the decoded body, and whether there was more.

    For error bodies, of which only the start is ever shown: the rest is not read (closing the
    response then closes its connection).

    Raises:
        BodyRefused: an encoding that was not asked for, or a body that does not decompress.
    """
    parts: list[bytes] = []
    try:
        for piece in iter_body(response, limit_bytes):
            parts.append(piece)
    except BodyTooLarge:
        return b"".join(parts), True
    return b"".join(parts), False


def iter_lines(pieces: Iterator[bytes]) -> Iterator[str]:
    """The text lines of a UTF-8 byte stream, split at CRLF, LF or CR as server-sent events are.

    An unterminated last line is a line too; invalid UTF-8 becomes U+FFFD.
    """
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for piece in pieces:
        chunk = pending + text.decode(piece)
        start = 0
        for found in _LINE_BREAK.finditer(chunk):
            if found.group() == "\r" and found.end() == len(chunk):
                break  # perhaps the first half of a CRLF split across pieces
            yield chunk[start : found.start()]
            start = found.end()
        pending = chunk[start:]
    rest = _LINE_BREAK.split(pending + text.decode(b"", final=True))
    if rest and rest[-1] == "":
        rest.pop()
    yield from rest


def _size(count: int) -> str:
    if count >= MIB and count % MIB == 0:
        return f"{count // MIB} MiB"
    return f"{count:,} bytes"
