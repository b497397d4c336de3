"""Reading one HTTP/1.1 request off a stream, for the core's loopback test servers: the kit's reader, without the query."""

from __future__ import annotations

import asyncio

from patcode_core.testing.fault_server import read_request as read_with_query


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, path without query, lower-cased headers, body) of the next request; ``None`` when the client left."""
    request = await read_with_query(reader)
    if request is None:
        return None
    method, target, headers, body = request
    return method, target.split("?")[0], headers, body
