"""The state of one process: what :class:`~patcode_core.state.SharedState` answers from while Redis is away.

Same methods and the same meaning as the shared state, in memory, on a monotonic clock. Nothing is
shared: two processes each have their own budget, circuits and cache.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from patcode_core.state.base import (
    ADMITTED,
    CLOSED,
    HALF_OPEN,
    HALF_OPEN_KEEP,
    LATENCIES_KEPT,
    OPEN,
    RPM_WINDOW,
    Admission,
    CircuitState,
    cache_id,
    positive,
)

#: Answers the local cache holds at most (the oldest go first).
LOCAL_CACHE_ENTRIES = 1024


class LocalState:
    """In-process state with the methods of the shared one (see :class:`~patcode_core.state.SharedState`)."""

    def __init__(self, *, window: float = RPM_WINDOW, latencies_kept: int = LATENCIES_KEPT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.latencies_kept = latencies_kept
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._blocked: dict[tuple[str, str], float] = {}
        self._circuits: dict[tuple[str, str], float] = {}  # the end of the cooldown
        self._probes: dict[tuple[str, str], float] = {}  # the end of the probe's lease
        self._latencies: dict[tuple[str, str], deque[float]] = {}
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._turns: dict[str, itertools.count[int]] = {}
        self._busy: dict[str, int] = {}

    async def admit(self, provider: str, model: str, rpm: int) -> Admission:
        circuit = await self.circuit(provider, model)
        if circuit.state == OPEN:
            return Admission(OPEN, circuit.retry_in)
        blocked = await self.blocked_for(provider, model)
        if blocked > 0:
            return Admission("blocked", blocked)
        wait = await self.take_rpm(provider, rpm)
        return Admission("rpm", wait) if wait > 0 else ADMITTED

    async def take_rpm(self, provider: str, rpm: int) -> float:
        now = self._clock()
        sent = self._sent.setdefault(provider, deque())
        while sent and now - sent[0] >= self.window:
            sent.popleft()
        if rpm <= 0:
            return 0.0
        if len(sent) < rpm:
            sent.append(now)
            return 0.0
        return max(0.001, sent[len(sent) - rpm] + self.window - now)

    async def block(self, provider: str, model: str, seconds: float) -> None:
        seconds = positive(seconds)
        if seconds:
            key = (provider, model)
            self._blocked[key] = max(self._blocked.get(key, 0.0), self._clock() + seconds)

    async def blocked_for(self, provider: str, model: str) -> float:
        left = self._blocked.get((provider, model), 0.0) - self._clock()
        if left <= 0:
            self._blocked.pop((provider, model), None)
            return 0.0
        return left

    async def open_circuit(self, provider: str, model: str, seconds: float, reason: str) -> None:
        self._circuits[(provider, model)] = self._clock() + positive(seconds)

    async def circuit(self, provider: str, model: str) -> CircuitState:
        until = self._circuits.get((provider, model))
        if until is None:
            return CircuitState(CLOSED)
        left = until - self._clock()
        if left > 0:
            return CircuitState(OPEN, left)
        if -left >= HALF_OPEN_KEEP:
            del self._circuits[(provider, model)]
            return CircuitState(CLOSED)
        return CircuitState(HALF_OPEN)

    async def close_circuit(self, provider: str, model: str) -> None:
        self._circuits.pop((provider, model), None)
        self._probes.pop((provider, model), None)

    async def claim_probe(self, provider: str, model: str, seconds: float) -> bool:
        self._probes[(provider, model)] = self._clock() + positive(seconds)  # alone, this process always holds it
        return True

    async def record_latency(self, provider: str, model: str, seconds: float) -> None:
        kept = self._latencies.get((provider, model))
        if kept is None:
            kept = self._latencies[(provider, model)] = deque(maxlen=self.latencies_kept)
        kept.append(float(seconds))

    async def latencies(self, provider: str, model: str) -> list[float]:
        return list(self._latencies.get((provider, model), ()))

    async def cache_get(self, key: str) -> str | None:
        key = cache_id(key)
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry[0]

    async def cache_put(self, key: str, answer_json: str, ttl: float) -> None:
        ttl = positive(ttl)
        if not ttl:
            return
        key = cache_id(key)
        self._cache[key] = (answer_json, self._clock() + ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > LOCAL_CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def next_turn(self, name: str) -> int:
        counter = self._turns.get(name)
        if counter is None:
            counter = self._turns[name] = itertools.count(1)
        return next(counter)

    async def in_flight(self, provider: str, delta: int) -> int:
        return await self.set_in_flight(provider, self._busy.get(provider, 0) + delta)

    async def set_in_flight(self, provider: str, count: int) -> int:
        count = max(0, count)
        if count:
            self._busy[provider] = count
        else:
            self._busy.pop(provider, None)
        return count

    async def in_flight_counts(self) -> dict[str, int]:
        return dict(self._busy)
