"""Circuit breakers: stop sending requests to a provider and model that keep failing.

After ``threshold`` failures in a row the circuit *opens*: the route is skipped
at no cost for ``cooldown`` seconds. Then it is *half-open*: exactly one
request probes it. A success closes it (and resets the cooldown); a failure
opens it again for twice as long, up to ``max_cooldown``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    """Where a circuit stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class CircuitStatus:
    """A circuit as ``/llm providers`` shows it."""

    provider: str
    model: str
    state: CircuitState
    failures: int
    retry_in: float
    cooldown: float


class CircuitBreaker:
    """One provider and model's circuit.

    :param threshold: consecutive failures that open it.
    :param cooldown: seconds it stays open the first time.
    :param max_cooldown: the longest it stays open after repeated failed probes.
    :param clock: a monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self._clock = clock
        self.failures = 0
        self.cooldown = cooldown
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """Closed, open, or half-open (the cooldown is over; a probe may go)."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def retry_in(self) -> float:
        """Seconds until the next probe may go (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """May a request go now? In half-open state only the first caller gets ``True``."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN or self._probing:
            return False
        self._probing = True
        return True

    @property
    def probing(self) -> bool:
        """True while the one half-open probe is in flight."""
        return self._probing

    def success(self) -> bool:
        """Record a success; returns True when it closed an open circuit."""
        was_open = self._opened_at is not None
        self.failures = 0
        self.cooldown = self.base_cooldown
        self._opened_at = None
        self._probing = False
        return was_open

    def failure(self) -> bool:
        """Record a failure; returns True when it (re)opened the circuit."""
        self.failures += 1
        if self._probing:
            self._probing = False
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._opened_at = self._clock()
            return True
        if self._opened_at is None and self.failures >= self.threshold:
            self._opened_at = self._clock()
            return True
        return False

    def release(self) -> None:
        """Give the probe back without a verdict (the call was cancelled or said nothing of health)."""
        self._probing = False


class BreakerBoard:
    """Every circuit, one per provider and model, created on first use.

    :param make: builds a new closed circuit (with the configured threshold and cooldowns).
    """

    def __init__(self, make: Callable[[], CircuitBreaker] = CircuitBreaker) -> None:
        self._make = make
        self._circuits: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The circuit of ``provider`` and ``model``."""
        key = (provider, model)
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = self._make()
        return circuit

    def status(self, provider: str) -> list[CircuitStatus]:
        """The circuits of ``provider`` that are not closed, by model."""
        return [
            CircuitStatus(name, model, circuit.state, circuit.failures, circuit.retry_in(), circuit.cooldown)
            for (name, model), circuit in sorted(self._circuits.items())
            if name == provider and circuit.state is not CircuitState.CLOSED
        ]
