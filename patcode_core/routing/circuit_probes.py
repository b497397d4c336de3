"""Background checks of open circuits: a recovered provider gets its traffic back within seconds, a dead one costs users nothing.

When a circuit opens, the :class:`CircuitProber` asks the provider the same
cheap question as ``/llm providers`` — the plugin's ``provider_available``
hook (``GET /models`` for chat-completions servers, a model list for most
others), no tokens spent — through the manager's guarded hook path, so a
stuck plugin is abandoned at ``min(10 s, *_TIMEOUT)``. Checks run as tasks
on the event loop where the calls run, never on a user request's path: no
request waits for one.

- The first check comes ``first`` seconds after the circuit opens, then
  twice as long each time, but never more than ``cap`` seconds apart (nor
  further apart than the circuit's cooldown); each delay is shortened by up
  to ``jitter`` so that circuits opened together do not check in step.
- A check that fails keeps the circuit open and restarts its cooldown (the
  provider was just seen down, so no request should try it yet).
- A check that passes makes the circuit half-open: the next request tries
  the provider, and its answer closes the circuit or opens it again at once.
  A check proves that the provider answers, not that it answers a
  completion: a server whose model list works while chat fails costs one
  request per check, never a burst.
- After ``window`` seconds of one outage the checks stop; the circuit then
  lets one request through every cooldown, as it does with no prober (a
  script without an event loop between calls, for instance).

Between two checks no task exists, only a timer on the loop; a closed
circuit costs nothing. :meth:`CircuitProber.aclose` (called by
``LLMManager.aclose``) cancels whatever is pending.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from patcode_core.errors import POLICY, ErrorKind
from patcode_core.routing.breaker import CircuitBreaker, CircuitState
from patcode_core.types import Availability

#: Asks a provider whether it can serve now (``LLMManager.availability``).
Check = Callable[[str], Awaitable[Availability]]
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ProbeSchedule:
    """When an open circuit is checked.

    :param first: seconds from opening to the first check.
    :param factor: how much longer each wait is than the one before.
    :param cap: the longest wait between two checks.
    :param jitter: each wait is shortened by up to this share of it (0.25: 75–100 %).
    :param window: seconds of one outage after which checks stop.
    """

    first: float = 1.0
    factor: float = 2.0
    cap: float = 4.0
    jitter: float = 0.25
    window: float = 600.0

    def delay(self, checks: int, cooldown: float, rng: Callable[[], float] = random.random) -> float:
        """Seconds before the next check, after ``checks`` checks of this outage."""
        base = min(self.first * self.factor ** min(checks, 64), self.cap, cooldown)
        return max(0.0, base * (1.0 - self.jitter * rng()))


def answers(availability: Availability) -> bool:
    """True when a check shows the provider answering: available, or refusing for a reason that is not ill health (a 429)."""
    if availability.available:
        return True
    kind = availability.kind
    return kind is not None and kind is not ErrorKind.NOT_CONFIGURED and not POLICY[kind].trips_breaker


def _fire(prober_ref: weakref.ref[CircuitProber], key: Key, circuit: CircuitBreaker) -> None:
    """A check's timer went off: start it (nothing, if the manager has gone)."""
    prober = prober_ref()
    if prober is not None:
        prober._start(key, circuit)


class CircuitProber:
    """Checks every open circuit in the background (see the module's description).

    :param check: asks one provider whether it can serve (``LLMManager.availability``).
    :param log: where state changes are logged (the manager's route events).
    :param schedule: when to check; tests shorten it.
    :param rng: random numbers in [0, 1) for the jitter.
    """

    def __init__(
        self,
        check: Check,
        log: Any,
        schedule: ProbeSchedule | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._check = check
        self._log = log
        self.schedule = schedule or ProbeSchedule()
        self._rng = rng
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        #: Circuits whose failed check was already logged at info since they last opened.
        self._told: set[Key] = set()
        #: The outage (its start) for which each circuit's checks gave up.
        self._gave_up: dict[Key, float | None] = {}
        self._closed = False
        #: ``LLM_STATE_URL``: the instances agree who checks a circuit (one at a time) and hear when it closed.
        self.shared: Any = None

    @property
    def active(self) -> int:
        """Circuits with a check pending or in flight."""
        return len(self._timers) + len(self._tasks)

    def watch(self, provider: str, model: str, circuit: CircuitBreaker) -> None:
        """``circuit`` just opened (or opened again after a failed try): check it from now on.

        Called on the event loop by the router; without a running loop nothing
        is scheduled and the circuit keeps its plain cooldown.
        """
        if self._closed:
            return
        key = (provider, model)
        self._told.discard(key)
        if key in self._tasks:  # a check is in flight: it schedules the next one itself
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._schedule(loop, key, circuit)

    def _schedule(self, loop: asyncio.AbstractEventLoop, key: Key, circuit: CircuitBreaker) -> None:
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending.cancel()
        now = circuit.now()
        delay = self.schedule.delay(circuit.checks, circuit.base_cooldown, self._rng)
        started = circuit.outage_started if circuit.outage_started is not None else now
        if now + delay - started > self.schedule.window:
            circuit.next_check_at = None
            if self._gave_up.get(key, -1.0) != circuit.outage_started:
                self._gave_up[key] = circuit.outage_started
                self._log.info(
                    "circuit_checks_stopped",
                    provider=key[0],
                    model=key[1],
                    minutes=f"{(now - started) / 60:.0f}",
                    seconds=f"{circuit.retry_in():.0f}",
                )
            return
        circuit.next_check_at = now + delay
        self._timers[key] = loop.call_later(delay, _fire, weakref.ref(self), key, circuit)

    def _start(self, key: Key, circuit: CircuitBreaker) -> None:
        self._timers.pop(key, None)
        if self._closed or key in self._tasks:
            return
        if circuit.state is CircuitState.CLOSED or circuit.probing or circuit.vouched:
            circuit.next_check_at = None  # a request is trying it, or already did: its verdict decides
            return
        task = asyncio.get_running_loop().create_task(self._probe(key, circuit), name=f"patcode-circuit-check:{key[0]}")
        self._tasks[key] = task

    async def _probe(self, key: Key, circuit: CircuitBreaker) -> None:
        """One check of ``circuit``; schedules the next when it failed."""
        provider, model = key
        if self.shared is not None and not await self._ours(key, circuit):
            return
        try:
            try:
                answer = await self._check(provider)
            except Exception as exc:  # the manager's check turns plugin failures into answers: this is a bug, kept visible
                answer = Availability(False, f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(key, None)
        if self._closed:
            return
        circuit.checks += 1
        if circuit.state is CircuitState.CLOSED or circuit.probing or circuit.vouched:
            circuit.next_check_at = None  # a request settled it meanwhile
            return
        if answers(answer):
            if circuit.vouch():
                self._log.info("circuit_check_passed", provider=provider, model=model)
            return
        circuit.check_failed(answer.reason)
        if self.shared is not None:  # still down: the other instances keep skipping it as long as this one does
            await self.shared.open_circuit(provider, model, circuit.retry_in(), answer.reason or "check failed")
        self._schedule(asyncio.get_running_loop(), key, circuit)
        if circuit.next_check_at is None:  # the checks gave up (logged)
            return
        level = "debug" if key in self._told else "info"
        self._told.add(key)
        getattr(self._log, level)(
            "circuit_check_failed",
            provider=provider,
            model=model,
            reason=answer.reason or "-",
            seconds=f"{circuit.next_check_at - circuit.now():.1f}",
        )

    async def _ours(self, key: Key, circuit: CircuitBreaker) -> bool:
        """With shared state: whether this instance checks ``circuit`` now. Another instance closed it (its request
        succeeded): trust that, and let the next request here try. Another instance holds the check: look again at
        the next turn. Either way nothing is sent from here."""
        provider, model = key
        seen = await self.shared.circuit(provider, model)
        if seen.state == "closed":
            self._tasks.pop(key, None)
            if circuit.vouch():
                self._log.info("circuit_check_passed", provider=provider, model=model)
            return False
        if await self.shared.claim_probe(provider, model, 2 * self.schedule.cap):
            return True
        self._tasks.pop(key, None)
        self._schedule(asyncio.get_running_loop(), key, circuit)
        return False

    async def aclose(self) -> None:
        """Cancel every pending check and wait for those in flight to end; nothing is checked afterwards."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
