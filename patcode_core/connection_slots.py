"""A provider's connection slots: how many requests may be in flight, and which of its HTTP clients each one uses.

httpcore's pool walks every connection it holds on each request (and polls
each idle socket), so one pool of 32 connections costs about twice the CPU
per request of 16 pools of 2 at 16 requests in flight (measured with httpx
alone against a loopback server: 1,297 vs 2,808 requests/s; 8 pools of 4:
2,661; at 64 in flight 1,143 vs 2,147). A provider therefore
gets :data:`SHARDS` clients of :data:`PER_SHARD` connections each, used
*fill first*: a request takes the lowest client with a free connection, so
one request at a time always reuses the same warm connection, and only
concurrency spreads over more clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar

#: Requests in flight per provider; beyond it they queue here, in order (cheap), not in httpcore's pool.
MAX_CONNECTIONS = 32
SHARDS = 16
PER_SHARD = MAX_CONNECTIONS // SHARDS

#: The client the request running in this task was given (0 outside any slot).
CURRENT_SHARD: ContextVar[int] = ContextVar("patcode_shard", default=0)


class ConnectionSlots:
    """At most :data:`MAX_CONNECTIONS` requests at once, each given a client index (fill first)."""

    def __init__(self) -> None:
        self._free = asyncio.Semaphore(MAX_CONNECTIONS)
        self._busy = [0] * SHARDS
        #: Hears the number in flight after each change (``least-busy`` routing shared by instances).
        self.on_change: Callable[[int], None] | None = None

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return sum(self._busy)

    def locked(self) -> bool:
        """True when every slot is taken (a new request would queue)."""
        return self._free.locked()

    async def acquire(self) -> int:
        """Wait for a slot; returns the client index it comes with, also set for this task (:data:`CURRENT_SHARD`)."""
        await self._free.acquire()
        index = 0
        while self._busy[index] >= PER_SHARD:  # the semaphore leaves one free: the lowest wins (fill first)
            index += 1
        self._busy[index] += 1
        CURRENT_SHARD.set(index)
        if self.on_change is not None:
            self.on_change(self.in_flight)
        return index

    def release(self, index: int) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        self._busy[index] -= 1
        self._free.release()
        if self.on_change is not None:
            self.on_change(self.in_flight)
