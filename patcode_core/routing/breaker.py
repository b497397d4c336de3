"""Circuit breakers: stop sending requests to a provider and model that keep failing.

After ``threshold`` failures in a row the circuit *opens*: the route is skipped
at no cost. While it is open, :mod:`patcode_core.routing.circuit_probes` checks the
provider in the background; a check that passes makes it *half-open*
(:meth:`CircuitBreaker.vouch`), a check that fails is fresh evidence that it
is down, so the cooldown starts again from it (:meth:`CircuitBreaker.check_failed`).
With nobody checking (no event loop, or the checks gave up), the circuit
turns half-open by itself ``cooldown`` seconds after the last evidence.

Half-open, exactly one request goes through. A success closes the circuit
(and resets the cooldown); a failure opens it again at once, however many
failures ``threshold`` asks for, for twice as long, up to ``max_cooldown``.
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
    :param cooldown: seconds it stays open the first time, with nobody checking it.
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
        self._vouched = False
        #: What the failure that last counted said (the reason the circuit is open).
        self.reason = ""
        #: When this outage began (the first opening since the circuit was last closed).
        self.outage_started: float | None = None
        #: Background checks made during this outage.
        self.checks = 0
        #: When the next background check is due (``None``: nobody is checking).
        self.next_check_at: float | None = None
        self._skips = 0
        self._skips_since = 0.0

    def now(self) -> float:
        """This circuit's clock (monotonic seconds)."""
        return self._clock()

    @property
    def state(self) -> CircuitState:
        """Closed, open, or half-open (a check passed or the cooldown is over: one request may go)."""
        opened_at = self._opened_at
        if opened_at is None:
            return CircuitState.CLOSED
        if self._probing or self._vouched or self._clock() - opened_at >= self.cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def retry_in(self) -> float:
        """Seconds until the next try, by a request or a background check (0 when closed or half-open)."""
        if self._opened_at is None or self._vouched:
            return 0.0
        now = self._clock()
        wait = self._opened_at + self.cooldown - now
        if self.next_check_at is not None:
            wait = min(wait, self.next_check_at - now)
        return max(0.0, wait)

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
        """True while the one half-open request is in flight."""
        return self._probing

    @property
    def vouched(self) -> bool:
        """True when a background check passed and no request has tried the circuit since."""
        return self._vouched

    def success(self) -> bool:
        """Record a success; returns True when it closed an open circuit."""
        was_open = self._opened_at is not None
        self.failures = 0
        self.cooldown = self.base_cooldown
        self._opened_at = None
        self._probing = False
        self._vouched = False
        self.outage_started = None
        self.checks = 0
        self.next_check_at = None
        return was_open

    def failure(self, reason: str = "") -> bool:
        """Record a failure; returns True when it (re)opened the circuit."""
        self.failures += 1
        if reason:
            self.reason = reason
        if self._probing:
            self._probing = False
            self._vouched = False
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
            self._opened_at = self._clock()
            return True
        if self._opened_at is None and self.failures >= self.threshold:
            self._opened_at = self.outage_started = self._clock()
            return True
        return False

    def release(self) -> None:
        """Give the probe back without a verdict (the call was cancelled or said nothing of health)."""
        self._probing = False

    # -- background checks (patcode_core.routing.circuit_probes) ------------------

    def vouch(self) -> bool:
        """A background check passed: let the next request try. True when the circuit was open."""
        if self._opened_at is None or self._probing or self._vouched:
            return False
        self._vouched = True
        self.next_check_at = None
        return True

    def check_failed(self, reason: str = "") -> None:
        """A background check failed: fresh evidence, so the cooldown starts again now."""
        if reason:
            self.reason = reason
        if self._opened_at is not None and not self._probing and not self._vouched:
            self._opened_at = self._clock()

    # -- skipped calls, summed up for the log --------------------------

    def note_skip(self, every: float) -> tuple[int, float] | None:
        """Count one call that skipped this circuit; every ``every`` seconds, hand back (calls, seconds) to log."""
        now = self._clock()
        if self._skips == 0:
            self._skips_since = now
        self._skips += 1
        if now - self._skips_since < every:
            return None
        return self.take_skips()

    def take_skips(self) -> tuple[int, float] | None:
        """The calls skipped since the last summary and over how many seconds (``None`` when none); starts a new count."""
        if self._skips == 0:
            return None
        counted = (self._skips, self._clock() - self._skips_since)
        self._skips = 0
        return counted


class BreakerBoard:
    """Every circuit, one per provider and model, created on first use.

    :param make: builds a new closed circuit (with the configured threshold and cooldowns).
    :param on_open: told ``(provider, model, circuit)`` each time a circuit opens
        (the background prober); see :meth:`opened`.
    """

    def __init__(
        self,
        make: Callable[[], CircuitBreaker] = CircuitBreaker,
        on_open: Callable[[str, str, CircuitBreaker], None] | None = None,
    ) -> None:
        self._make = make
        self._circuits: dict[tuple[str, str], CircuitBreaker] = {}
        self.on_open = on_open

    def get(self, provider: str, model: str) -> CircuitBreaker:
        """The circuit of ``provider`` and ``model``."""
        key = (provider, model)
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = self._make()
        return circuit

    def opened(self, provider: str, model: str, circuit: CircuitBreaker) -> None:
        """Say that ``circuit`` just opened (or opened again), so it is watched."""
        if self.on_open is not None:
            self.on_open(provider, model, circuit)

    def status(self, provider: str) -> list[CircuitStatus]:
        """The circuits of ``provider`` that are not closed, by model."""
        return [
            CircuitStatus(name, model, circuit.state, circuit.failures, circuit.retry_in(), circuit.cooldown)
            for (name, model), circuit in sorted(self._circuits.items())
            if name == provider and circuit.state is not CircuitState.CLOSED
        ]

    def items(self) -> list[tuple[tuple[str, str], CircuitBreaker]]:
        """Every circuit with its (provider, model)."""
        return list(self._circuits.items())
