"""Server-sent events: the ``data:`` of each event of a ``text/event-stream`` body, with or without its name."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield each event's data (its ``data:`` lines joined), as the SSE specification reads them.

    Comments (``:``) and the ``event``, ``id`` and ``retry`` fields are
    skipped; an event not closed by a blank line before the body ends is
    still delivered.
    """
    async for _, data in sse_events(lines):
        yield data


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event name, data)`` per event; the name is ``"message"`` when the event names none.

    For APIs that name their events (``event: content_block_delta``,
    ``event: ping``, ``event: error``). An event with no ``data:`` line is
    not delivered, as the specification says.
    """
    data: list[str] = []
    event = "message"
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            data, event = [], "message"
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)
