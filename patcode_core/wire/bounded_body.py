"""A cap on how much of a provider's answer PatCode reads: ``LLM_MAX_RESPONSE_BYTES``.

A provider (or whatever answers at its address) can send a gzip body of half
a megabyte that inflates to half a gigabyte, or a body that never ends. Every
provider client gets :func:`bound_response` as a response hook: before the
body is read, its stream is replaced by one that decompresses ``gzip`` and
``deflate`` itself, step by step, and stops with :class:`ResponseTooLarge`
once the decoded bytes pass the limit — for plain answers, streams and
status checks alike. Any other ``Content-Encoding`` is passed on undecoded
(and so fails to parse as the malformed answer it is).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import httpx

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class ResponseTooLarge(Exception):
    """An answer went past the byte limit; the core reports it as a malformed response."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response larger than {limit} bytes")
        self.limit = limit


def _decoder(encoding: str) -> zlib._Decompress | None:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


class _BoundedStream(httpx.AsyncByteStream):
    """The body, decoded here when compressed, counted as it is read."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, encoding: str) -> None:
        self._inner = inner
        self._limit = limit
        self._encoding = encoding
        self._read = 0

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit:
            raise ResponseTooLarge(self._limit)
        return data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = _decoder(self._encoding)
        async for chunk in self._inner:
            if decoder is None:
                yield self._count(chunk)
                continue
            pending = chunk
            while pending:
                # Never inflate more than one byte past what is still allowed.
                room = self._limit - self._read + 1
                try:
                    data = decoder.decompress(pending, room)
                except zlib.error as exc:
                    raise httpx.DecodingError(f"{self._encoding}: {exc}") from None
                pending = decoder.unconsumed_tail
                if data:
                    yield self._count(data)
        if decoder is not None:
            tail = decoder.flush(self._limit - self._read + 1)
            if tail:
                yield self._count(tail)

    async def aclose(self) -> None:
        await self._inner.aclose()


def bound_response(response: httpx.Response, limit: int) -> None:
    """Make ``response`` read at most ``limit`` decoded bytes (call before its body is read)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding:
        # httpx must not decode it again (nor unboundedly): the stream below does.
        del response.headers["content-encoding"]
    if isinstance(response.stream, httpx.AsyncByteStream):
        response.stream = _BoundedStream(response.stream, limit, encoding)
