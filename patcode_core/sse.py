"""Server-sent events: the ``data:`` of each event of a ``text/event-stream`` body."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield each event's data (its ``data:`` lines joined), as the SSE specification reads them.

    Comments (``:``) and the ``event``, ``id`` and ``retry`` fields are
    skipped; an event not closed by a blank line before the body ends is
    still delivered.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
