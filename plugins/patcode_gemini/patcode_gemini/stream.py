"""A ``streamGenerateContent?alt=sse`` body as StreamChunks.

Each ``data:`` event is one ``GenerateContentResponse`` (see
:mod:`patcode_gemini.wire`); ``usageMetadata`` is cumulative, so every chunk
carries the counts so far and the core keeps the latest. The stream is whole
at the first candidate with a ``finishReason``; a body that ends before one
yields no ``done`` chunk, and the core treats the answer as cut.

Two things Google's own SDK (``google/genai/_api_client.py``,
``_aiter_response_stream``) also copes with: an error that arrives as plain
JSON lines instead of a ``data:`` event ("When API returns an error message,
it comes line by line"), and a body that is one JSON array of responses
(the format without ``alt=sse``, which a proxy may fall back to).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from patcode_core.plugin import ProviderContext, StreamChunk, sse_data
from patcode_gemini.errors import GoogleError, from_google, malformed, read_error
from patcode_gemini.wire import read_piece

#: Unreadable events a stream may skip (each with a warning) before it counts as broken.
MAX_SKIPPED_EVENTS = 3
_SSE_FIELDS = frozenset({"data", "event", "id", "retry"})
#: How much of the lines outside SSE events is kept to read an error from (a Google error body is < 2 KB).
_STRAY_LIMIT = 16_384


async def _keep_stray(lines: AsyncIterator[str], stray: list[str]) -> AsyncIterator[str]:
    """Pass every line on, keeping in ``stray`` those that are no SSE field (a JSON error written as is)."""
    kept = 0
    async for line in lines:
        if line and not line.startswith(":") and line.partition(":")[0] not in _SSE_FIELDS and kept < _STRAY_LIMIT:
            stray.append(line)
            kept += len(line)
        yield line


def _stray_error(stray: list[str]) -> GoogleError | None:
    try:
        return read_error(json.loads("\n".join(stray)))
    except (json.JSONDecodeError, RecursionError):
        return None


async def read_sse(context: ProviderContext, lines: AsyncIterator[str], model: str) -> AsyncIterator[StreamChunk]:
    """Turn the SSE lines of a 200 answer into chunks, ending with ``done`` at the first ``finishReason``.

    :raises ProviderError: an error event (or error lines), a content filter,
        an unexpected finish, or more than :data:`MAX_SKIPPED_EVENTS` unreadable events.
    """
    stray: list[str] = []
    skipped = 0
    async for data in sse_data(_keep_stray(lines, stray)):
        try:
            event = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            event = None
        listed_error = read_error(event) if isinstance(event, list) else None
        if listed_error is not None:
            raise from_google(context, listed_error, model, in_stream=True)
        if not isinstance(event, dict):
            skipped += 1
            if skipped > MAX_SKIPPED_EVENTS:
                raise malformed(context, f"{skipped} unreadable stream events", model)
            yield StreamChunk(skipped=data[:80])
            continue
        piece = read_piece(context, event, model, in_stream=True)
        if piece.finish is not None:
            yield StreamChunk(piece.text, piece.finish, piece.usage, piece.model, done=True, extra=piece.extra)
            return
        if piece.text or piece.usage is not None or piece.model is not None:
            yield StreamChunk(text=piece.text, usage=piece.usage, model=piece.model)
    error = _stray_error(stray) if stray else None
    if error is not None:
        raise from_google(context, error, model, in_stream=True)
    # No finishReason: no done chunk, so the core never passes this answer off as whole.


def read_array(context: ProviderContext, body: Any, model: str) -> Iterable[StreamChunk]:
    """A stream sent as one JSON array of responses (no ``alt=sse``): the same chunks, all at once."""
    error = read_error(body)
    if error is not None:
        raise from_google(context, error, model)
    events = body if isinstance(body, list) else [body]
    chunks = []
    for event in events:
        if not isinstance(event, dict):
            raise malformed(context, "not a GenerateContentResponse object", model)
        piece = read_piece(context, event, model)
        if piece.finish is not None:
            chunks.append(StreamChunk(piece.text, piece.finish, piece.usage, piece.model, done=True, extra=piece.extra))
            break
        chunks.append(StreamChunk(text=piece.text, usage=piece.usage, model=piece.model))
    return chunks
