"""Runs one completion along its route: rate limits, circuit breakers, retries, deadline, fallback.

For each provider and model of the route, in order:

1. no key, broken plugin → skipped, next;
2. a rate limit in force (our ``*_RPM`` or the provider's quota until its
   reset) → when a later provider exists, it is tried first and this one is
   kept for the end; otherwise PatCode waits, up to ``LLM_MAX_RATE_LIMIT_WAIT``;
3. circuit open → skipped at no cost (a half-open circuit lets one request
   try it), looked at again after any wait for a connection slot;
4. the request, inside what is left of ``LLM_REQUEST_DEADLINE`` and the
   provider's ``*_TIMEOUT``; a transient failure is retried up to
   ``LLM_MAX_RETRIES`` times with backoff and jitter, never sooner than the
   provider asked; a silent provider (timeout) is not retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patcode_core.accounting.stats import StatsRecorder
from patcode_core.config import FallbackEntry, LLMConfig
from patcode_core.context import ATTEMPT_MODEL, ProviderContext
from patcode_core.errors import AllProvidersFailedError, ErrorKind, PatCodeError, ProviderError
from patcode_core.i18n import t
from patcode_core.routing.breaker import BreakerBoard, CircuitBreaker, CircuitState
from patcode_core.routing.deadline import Deadline
from patcode_core.routing.race import RACER
from patcode_core.routing.retry import SHORT_RATE_LIMIT_WAIT, retry_delay
from patcode_core.state.base import OPEN as SHARED_OPEN
from patcode_core.state.base import answer_json, answer_of
from patcode_core.types import CachedAnswer, CompletionRequest, CompletionResult, ProviderReply, Usage

if TYPE_CHECKING:
    from types import TracebackType

    from patcode_core.accounting.usage import UsageLog
    from patcode_core.state.shared import SharedState

HookCall = Callable[..., Awaitable[Any]]
TIMEOUT_GRACE = 0.1


@dataclass(frozen=True, slots=True)
class _Deferred:
    """A route entry set aside because it is rate-limited; tried last."""

    entry: FallbackEntry
    wait: float
    attempts: int


@dataclass(slots=True)
class Opened:
    """A provider that accepted the request: its answer (or open stream) and how it got there.

    :param position: the entry's index in the route that was walked.
    :param value: what the opener returned (a ``ProviderReply`` or a live stream).
    :param latency: seconds the opener took.
    :param attempts: requests sent to this provider for this call.
    """

    entry: FallbackEntry
    position: int
    context: ProviderContext
    circuit: CircuitBreaker
    request: CompletionRequest
    value: Any
    latency: float
    attempts: int


#: Sends one request once a connection slot is held: ``(context, request, deadline, retry) -> (value, seconds)``.
Opener = Callable[[ProviderContext, CompletionRequest, Deadline, bool], Awaitable[tuple[Any, float]]]


def _fallback_from(provider: str, failures: list[ProviderError]) -> str | None:
    """The first other provider that failed or was skipped before ``provider`` answered."""
    if not failures:  # the usual case, on every answer: skip building the generator
        return None
    return next((failure.provider for failure in failures if failure.provider != provider), None)


def _only_open_circuits(failures: list[ProviderError]) -> bool:
    """True when every failure so far is a skip of an open circuit: routine, logged at debug."""
    return all(failure.skipped and failure.kind is ErrorKind.CIRCUIT_OPEN for failure in failures)


def _estimated_tokens(request: CompletionRequest) -> int:
    """A cheap lower bound of the prompt's tokens (about four characters each)."""
    return sum(len(message.content) for message in request.messages) // 4


class _Booking:
    """What :meth:`Router.booked` returns: a class, not ``@contextmanager`` (whose generator cost ~0.5 µs a request)."""

    __slots__ = ("_router", "_context", "_request", "_retry", "_to_error", "_started", "_token")

    def __init__(
        self, router: Router, context: ProviderContext, request: CompletionRequest, retry: bool,
        to_error: Callable[[Exception], ProviderError],
    ) -> None:
        self._router = router
        self._context = context
        self._request = request
        self._retry = retry
        self._to_error = to_error

    def __enter__(self) -> float:
        self._started = started = time.perf_counter()
        self._token = ATTEMPT_MODEL.set(self._request.model)
        return started

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        try:
            if isinstance(exc, asyncio.CancelledError):
                self._router.record_cancelled(self._context.name, self._request, time.perf_counter() - self._started,
                                              self._retry)
            elif isinstance(exc, Exception):
                error = self._to_error(exc)
                self._router.record_failure(error, self._request, time.perf_counter() - self._started, self._retry)
                raise error from None
        finally:
            ATTEMPT_MODEL.reset(self._token)


class Router:
    """Serves completions for the manager; owns no configuration of its own.

    Calls that skip an open circuit are summed up in the log every
    :attr:`skip_summary_every` seconds (a class attribute; tests shorten it).

    :param contexts: each loaded provider's context.
    :param llm: the core settings (retries, waits, deadline).
    :param breakers: the circuit of every provider and model.
    :param stats: where each request and skip is counted.
    :param call: runs one hook of one provider (the manager's ``_call``).
    :param scrub: removes secrets from an error.
    :param missing: the error for a provider whose plugin did not load.
    :param log: the structlog logger.
    :param usage: prices, usage history and the response cache.
    """

    skip_summary_every: float = 30.0

    def __init__(
        self,
        contexts: dict[str, ProviderContext],
        llm: LLMConfig,
        breakers: BreakerBoard,
        stats: StatsRecorder,
        call: HookCall,
        scrub: Callable[[ProviderError], ProviderError],
        missing: Callable[[str], ProviderError],
        plugin_of: Callable[[str], str],
        log: Any,
        usage: UsageLog,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._contexts = contexts
        # Read once: these are on every call's path.
        self._deadline_seconds: float = llm.request_deadline
        self._max_attempts: int = 1 + llm.max_retries
        self._max_rate_limit_wait: float = llm.max_rate_limit_wait
        self._retry_base_delay: float = llm.retry_base_delay
        self._breakers = breakers
        self._stats = stats
        self._call = call
        self._scrub = scrub
        self._missing = missing
        self._plugin_of = plugin_of
        self._log = log
        self._rng = rng
        self.usage = usage
        #: ``LLM_STATE_URL``: circuits, quota blocks, budgets and the cache shared with other instances.
        self.shared: SharedState | None = None
        self._sharing: set[asyncio.Task[None]] = set()

    def share(self, change: Coroutine[Any, Any, None]) -> None:
        """Tell the other instances, without making this call wait (the shared state never raises)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a block noted outside a call): nothing to tell with
            change.close()
            return
        task = loop.create_task(change)
        self._sharing.add(task)
        task.add_done_callback(self._sharing.discard)

    def context_of(self, provider: str) -> ProviderContext | None:
        """The context of a loaded provider."""
        return self._contexts.get(provider)

    def new_deadline(self) -> Deadline:
        """The overall budget of one call (``LLM_REQUEST_DEADLINE``), starting now."""
        return Deadline(self._deadline_seconds)

    async def run(
        self, route: list[FallbackEntry], make_request: Callable[[str], CompletionRequest], use_fallback: bool
    ) -> CompletionResult:
        """Answer along ``route``; raise the error as it is with fallback off, else every failure."""
        failures: list[ProviderError] = []
        opened = await self.walk(route, make_request, self.new_deadline(), failures, use_fallback, self._complete)
        if isinstance(opened.value, CachedAnswer):
            return self.from_cache(opened, failures)
        reply: ProviderReply = opened.value
        answer = CachedAnswer(reply.text, reply.finish_reason, reply.usage.input_tokens, reply.usage.output_tokens, reply.model)
        cost = self.succeeded(opened, opened.latency, failures, answer, reply.usage)
        return CompletionResult(
            text=reply.text,
            provider=opened.context.name,
            model=reply.model or opened.request.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            latency=opened.latency,
            failures=tuple(failures),
            extra=reply.extra,
            attempts=opened.attempts,
            cost=cost,
        )

    def from_cache(self, opened: Opened, failures: list[ProviderError]) -> CompletionResult:
        """The result of a cache hit: no request, no cost, marked in the statistics."""
        hit: CachedAnswer = opened.value
        name, model = opened.context.name, opened.request.model
        usage = Usage(hit.input_tokens, hit.output_tokens)
        self._stats.record_cache_hit(name)
        self.usage.attempt(name, model, "success", request=opened.request, latency=0.0, usage=usage, cost=0.0,
                           fallback_from=_fallback_from(name, failures), cached=True, answer=hit.text)
        return CompletionResult(
            text=hit.text,
            provider=name,
            model=hit.model or model,
            finish_reason=hit.finish_reason,
            usage=usage,
            latency=0.0,
            failures=tuple(failures),
            attempts=0,
            cost=0.0,
            cached=True,
        )

    async def walk(
        self,
        route: list[FallbackEntry],
        make_request: Callable[[str], CompletionRequest],
        deadline: Deadline,
        failures: list[ProviderError],
        use_fallback: bool,
        opener: Opener,
    ) -> Opened:
        """The first provider along ``route`` that accepts the request, or the error that ends the call.

        ``failures`` gains every failure and skip on the way.
        """
        deferred: list[tuple[int, _Deferred]] = []
        for index, entry in enumerate(route):
            may_defer = use_fallback and index < len(route) - 1
            if self._out_of_time(deadline, failures):
                break
            outcome = await self._serve(entry, make_request, deadline, failures, may_defer, 0, opener)
            if isinstance(outcome, Opened):
                outcome.position = index
                return outcome
            if isinstance(outcome, _Deferred):
                deferred.append((index, outcome))
        for index, waiting in sorted(deferred, key=lambda item: item[1].wait):
            if self._out_of_time(deadline, failures):
                break
            outcome = await self._serve(waiting.entry, make_request, deadline, failures, False, waiting.attempts, opener)
            if isinstance(outcome, Opened):
                outcome.position = index
                return outcome
        if not use_fallback and failures:
            raise failures[-1]
        raise self.all_failed(failures, deadline)

    def succeeded(
        self,
        opened: Opened,
        latency: float,
        failures: list[ProviderError],
        answer: CachedAnswer,
        usage: Usage,
        ttft: float | None = None,
    ) -> float | None:
        """Book a finished answer (statistics, history, cache, circuit, log line); returns its cost."""
        name, model = opened.context.name, opened.request.model
        self._stats.record(name, True, latency, retry=opened.attempts > 1)
        cost = self.usage.cost(name, answer.model or model, usage)
        self.usage.attempt(name, model, "success", request=opened.request, latency=latency, usage=usage, ttft=ttft,
                           cost=cost, fallback_from=_fallback_from(name, failures), answer=answer.text)
        kept = self.usage.remember(name, opened.request, answer)
        if kept is not None and self.shared is not None:  # what the local cache keeps, and nothing else
            self.share(self.shared.cache_put(kept, answer_json(answer), self.usage.cache_ttl))
        if opened.circuit.success():
            self._log_circuit_closed(name, model, opened.circuit)
            if self.shared is not None:
                self.share(self.shared.close_circuit(name, model))
        if failures and any(failure.provider != name for failure in failures):
            (self._log.debug if _only_open_circuits(failures) else self._log.info)("fallback_succeeded", provider=name)
        return cost

    def record_failure(self, error: ProviderError, request: CompletionRequest, seconds: float, retry: bool) -> None:
        """Count one request that failed before the provider accepted it."""
        self._stats.record(error.provider, False, seconds, retry=retry)
        self.usage.attempt(error.provider, request.model, "failure", request=request, error_kind=error.kind.value,
                           latency=seconds)

    def record_cancelled(self, provider: str, request: CompletionRequest, seconds: float, retry: bool) -> None:
        """Count one request the caller stopped: sent, but no verdict on the provider.

        A request that lost a hedged race is a cancelled one marked ``hedged`` (``error_kind``).
        """
        racer = RACER.get()
        hedged = racer is not None and racer.lost
        self._stats.record(provider, None, seconds, retry=retry)
        self.usage.attempt(provider, request.model, "cancelled", request=request, latency=seconds,
                           error_kind="hedged" if hedged else None)

    def can_hedge(self, entry: FallbackEntry) -> bool:
        """Whether ``entry`` may be started as a hedge now: loaded, keyed, circuit closed, not rate-limited."""
        context = self._contexts.get(entry.provider)
        if context is None or not context.configured:
            return False
        model = entry.model or context.settings.model
        if self._breakers.get(entry.provider, model).state is not CircuitState.CLOSED:
            return False
        return max(context.requests_per_minute.wait(), context.quota.wait(model)) <= 0

    def note_hedge(self, primary: str, hedge: str, after: float) -> None:
        """Log that ``hedge`` was started beside a late ``primary``."""
        self._log.info("hedge_started", provider=primary, hedge=hedge, seconds=f"{after:.2f}")

    def broke(self, opened: Opened, error: ProviderError, latency: float, failures: list[ProviderError]) -> None:
        """Book an answer that failed after the provider had accepted it (a stream cut mid-way)."""
        self.record_failure(error, opened.request, latency, opened.attempts > 1)
        error.attempt = opened.attempts
        opened_circuit = self._judge(opened.circuit, error)
        self.fail(failures, error, skipped=False, raise_now=False)
        if opened_circuit:
            self._log_circuit_opened(opened.context.name, opened.request.model, opened.circuit)

    @staticmethod
    def _out_of_time(deadline: Deadline, failures: list[ProviderError]) -> bool:
        return deadline.expired or bool(failures and failures[-1].kind is ErrorKind.DEADLINE)

    # -- one route entry -----------------------------------------------

    async def _serve(
        self,
        entry: FallbackEntry,
        make_request: Callable[[str], CompletionRequest],
        deadline: Deadline,
        failures: list[ProviderError],
        may_defer: bool,
        attempts: int,
        opener: Opener,
    ) -> Opened | _Deferred | None:
        """Try one provider and model; ``None`` when it failed and the route goes on."""
        name = entry.provider
        if failures and attempts == 0:  # past open circuits only, the next provider is routine: debug
            (self._log.debug if _only_open_circuits(failures) else self._log.info)("fallback_trying", provider=name)
        context = self._contexts.get(name)
        if context is None:
            self.fail(failures, self._missing(name), skipped=True)
            return None
        model = entry.model or context.settings.model
        if not context.configured:
            self.fail(failures, context.not_configured_error(model), skipped=True)
            return None
        circuit = self._breakers.get(name, model)
        request: CompletionRequest | None = None
        if name in self.usage.cache_for:
            request = make_request(model)
            key = self.usage.key_of(name, request)
            hit = self.usage.cached(name, request, key)
            if hit is None and self.shared is not None:
                hit = answer_of(await self.shared.cache_get(key))
            if hit is not None:
                return Opened(entry, 0, context, circuit, request, hit, 0.0, 0)
        if circuit.state is CircuitState.OPEN:  # the cheapest way past a dead provider
            self.fail(failures, self._circuit_open(context, model, circuit), skipped=True)
            return None
        if request is None:
            request = make_request(model)
        max_attempts = self._max_attempts
        told_to_wait = False
        while attempts < max_attempts and not deadline.expired:
            if circuit.state is CircuitState.OPEN:
                self.fail(failures, self._circuit_open(context, model, circuit), skipped=True)
                return None
            wait = self._gate_wait(context, model, request)
            if wait <= 0 and self.shared is not None:  # one round trip: the other instances' circuit, block, budget
                admission = await self.shared.admit(name, model, context.settings.rpm)
                if admission.verdict == SHARED_OPEN:
                    self.fail(failures, self._shared_circuit_open(context, model, admission.wait), skipped=True)
                    return None
                wait = admission.wait
            if wait > 0:
                patience = SHORT_RATE_LIMIT_WAIT if told_to_wait else 0.0
                if may_defer and wait > patience:
                    if not told_to_wait:
                        self.fail(failures, self._rate_limited(context, request, wait), skipped=True)
                    return _Deferred(entry, wait, attempts)
                if wait > self._max_rate_limit_wait or not deadline.allows(wait):
                    self.fail(failures, self._wait_too_long(context, model, wait, deadline), skipped=True)
                    return None
                self._log.warning("rate_limit_wait", provider=name, seconds=f"{wait:.1f}")
                await asyncio.sleep(wait)
                continue
            probe = circuit.state is not CircuitState.CLOSED  # allowed anyway: the one half-open try
            if not circuit.allow():
                self.fail(failures, self._circuit_open(context, model, circuit), skipped=True)
                return None
            attempts += 1
            try:
                value, latency = await self._attempt(context, request, deadline, attempts > 1, opener, circuit, probe)
            except ProviderError as error:
                if error.skipped:  # queued until the deadline ran out or the circuit opened: nothing was sent
                    if probe:
                        circuit.release()
                    self.fail(failures, error, skipped=True)
                    return None
                error.attempt = attempts
                opened = self._judge(circuit, error)
                self.fail(failures, error, skipped=False)
                if opened:
                    self._log_circuit_opened(name, model, circuit)
                    if self.shared is not None:
                        self.share(self.shared.open_circuit(name, model, circuit.retry_in(), error.kind.value))
                if not error.retryable or attempts >= max_attempts or circuit.state is not CircuitState.CLOSED:
                    return None
                if error.kind is ErrorKind.RATE_LIMIT:
                    # Wait as the provider asked (or back off); the gate above decides
                    # between waiting here and trying the next provider first.
                    told_to_wait = True
                    asked = max(error.retry_after or 0.0, context.quota.wait(model)) or None
                    context.quota.block(model, retry_delay(attempts, self._retry_base_delay, asked, self._rng))
                    continue
                told_to_wait = False
                delay = retry_delay(attempts, self._retry_base_delay, error.retry_after, self._rng)
                if not deadline.allows(delay):
                    return None
                self._log.info(
                    "retrying", provider=name, attempt=attempts + 1, attempts=max_attempts, seconds=f"{delay:.2f}"
                )
                await asyncio.sleep(delay)
                continue
            except BaseException:
                if probe:
                    circuit.release()
                raise
            return Opened(entry, 0, context, circuit, request, value, latency, attempts)
        return None

    def _gate_wait(self, context: ProviderContext, model: str, request: CompletionRequest) -> float:
        return max(context.requests_per_minute.wait(), context.quota.wait(model, _estimated_tokens(request)))

    @staticmethod
    def _judge(circuit: CircuitBreaker, error: ProviderError) -> bool:
        """Book a failure on the circuit (only failures that say the provider is unwell count).

        Returns True when this failure opened the circuit.
        """
        if not error.trips_breaker:
            if circuit.probing:
                circuit.release()
            return False
        return circuit.failure(error.message)

    # -- one request ---------------------------------------------------

    async def _attempt(
        self,
        context: ProviderContext,
        request: CompletionRequest,
        deadline: Deadline,
        retry: bool,
        opener: Opener,
        circuit: CircuitBreaker | None = None,
        probe: bool = False,
    ) -> tuple[Any, float]:
        """Hold one of the provider's connection slots and run ``opener``.

        Waiting for a slot is bounded by the deadline only: a local queue is
        not the provider's fault, so it is neither timed by ``*_TIMEOUT`` nor
        counted as a request. After a wait, the deadline and ``circuit`` are
        looked at again: a circuit that opened meanwhile (or went half-open
        for another request's try, unless ``probe`` says this is that try)
        sends the request on along the route, unsent (``skipped``). A reply
        gives the slot back at once; a live stream keeps it until it is closed.
        """
        try:
            if context.slots.locked():  # only a real queue needs a timer, and a second look after it
                async with asyncio.timeout(deadline.remaining()):
                    shard = await context.slots.acquire()
                refused = self._after_queue(context, request.model, deadline, circuit, probe)
                if refused is not None:
                    context.slots.release(shard)
                    refused.skipped = True
                    raise refused
            else:
                shard = await context.slots.acquire()
        except TimeoutError:
            error = self._timed_out(context, request.model, True, deadline)
            error.skipped = True
            raise error from None
        keep = False
        try:
            context.requests_per_minute.take()
            value, latency = await opener(context, request, deadline, retry)
            keep = getattr(value, "holds_slot", False)
            return value, latency
        finally:
            if not keep:
                context.slots.release(shard)

    def _after_queue(
        self, context: ProviderContext, model: str, deadline: Deadline, circuit: CircuitBreaker | None, probe: bool
    ) -> ProviderError | None:
        """Why a request that waited for a slot must not be sent after all, or ``None`` to send it."""
        if deadline.expired:
            return self._timed_out(context, model, True, deadline)
        if circuit is not None and not probe and circuit.state is not CircuitState.CLOSED:
            return self._circuit_open(context, model, circuit)
        return None

    async def _complete(
        self, context: ProviderContext, request: CompletionRequest, deadline: Deadline, retry: bool
    ) -> tuple[ProviderReply, float]:
        """One ``provider_complete`` inside the provider's timeout and what is left of the deadline."""
        # The grace lets httpx's own connect and first-byte timeouts speak first;
        # this limit catches what they cannot see, like a body trickled forever.
        provider_limit = context.settings.timeout + TIMEOUT_GRACE
        budget = min(provider_limit, deadline.remaining())

        def to_error(exc: Exception) -> ProviderError:
            return self.as_provider_error(exc, context, request.model, deadline, cut_by_deadline=budget < provider_limit)

        with self.booked(context, request, retry, to_error) as started:
            async with asyncio.timeout(budget):
                reply = await self.reply_of(context, request)
        return reply, time.perf_counter() - started

    def booked(
        self, context: ProviderContext, request: CompletionRequest, retry: bool, to_error: Callable[[Exception], ProviderError]
    ) -> _Booking:
        """Around one request: book its model for the rate-limit headers, and count it if it fails or is cancelled.

        Enters as the moment it started. Whatever escapes becomes ``to_error(exc)``.
        """
        return _Booking(self, context, request, retry, to_error)

    async def reply_of(self, context: ProviderContext, request: CompletionRequest) -> ProviderReply:
        """The provider's ``provider_complete`` answer, checked to be a ProviderReply."""
        reply = await self._call(context.name, "provider_complete", request=request, context=context)
        if not isinstance(reply, ProviderReply):
            raise TypeError(t("plugin.bad_reply", got=type(reply).__name__))
        return reply

    def as_provider_error(
        self, exc: Exception, context: ProviderContext, model: str, deadline: Deadline, *, cut_by_deadline: bool
    ) -> ProviderError:
        """Whatever a plugin let escape, as the ProviderError the route understands (secrets removed)."""
        if isinstance(exc, ProviderError):
            return self._scrub(exc)
        if isinstance(exc, TimeoutError):
            return self._timed_out(context, model, cut_by_deadline, deadline)
        return self._scrub(context.error_from_exception(exc, self._plugin_of(context.name), model))

    # -- errors --------------------------------------------------------

    def _log_circuit_opened(self, provider: str, model: str, circuit: CircuitBreaker) -> None:
        """Log a circuit that opened (with why, and when it is tried next) and have it watched by the prober."""
        self._breakers.opened(provider, model, circuit)
        self._log.warning(
            "circuit_opened",
            provider=provider,
            model=model,
            failures=circuit.failures,
            reason=circuit.reason or "-",
            seconds=f"{circuit.retry_in():.1f}",
        )

    def _log_circuit_closed(self, provider: str, model: str, circuit: CircuitBreaker) -> None:
        """Log a circuit that closed, after the summary of the calls it still owes the log."""
        self._log_skips(provider, model, circuit.take_skips())
        self._log.info("circuit_closed", provider=provider, model=model)

    def _log_skips(self, provider: str, model: str, counted: tuple[int, float] | None) -> None:
        if counted is not None:
            calls, seconds = counted
            self._log.info("circuit_skips", provider=provider, model=model, calls=calls, seconds=f"{round(seconds, 1):g}")

    def fail(self, failures: list[ProviderError], error: ProviderError, *, skipped: bool, raise_now: bool = True) -> None:
        """Record and log one failure; raise it at once when no other provider could do better.

        A call that skips an open circuit is logged at debug only; the info
        level gets a summary every :attr:`skip_summary_every` seconds instead.
        """
        error.skipped = skipped
        failures.append(error)
        if skipped:
            self._stats.record_skip(error.provider)
            self.usage.attempt(error.provider, error.model or "", "skipped", error_kind=error.kind.value)
            if error.kind is ErrorKind.CIRCUIT_OPEN:
                self._log.debug("provider_skipped", provider=error.provider, error=error.message)
                circuit = self._breakers.get(error.provider, error.model or "")
                self._log_skips(error.provider, error.model or "", circuit.note_skip(self.skip_summary_every))
            else:
                self._log.info("provider_skipped", provider=error.provider, error=error.message)
        else:
            self._log.warning(
                "provider_failed", provider=error.provider, error=error.message, kind=error.kind.value, attempt=error.attempt
            )
        if raise_now and not error.fallback and error.kind is not ErrorKind.DEADLINE:
            raise self.ending(failures, error)

    def ending(self, failures: list[ProviderError], error: ProviderError) -> PatCodeError:
        """The error that ends a call at ``error`` (no other provider would do better).

        When another provider had already failed on its own (it was tried, not
        skipped), every failure is listed: the user must learn that the first
        provider is down, not only why the last one refused.
        """
        if any(not failure.skipped and failure.provider != error.provider for failure in failures if failure is not error):
            return self.all_failed(failures)
        return error

    def _timed_out(self, context: ProviderContext, model: str, cut_by_deadline: bool, deadline: Deadline) -> ProviderError:
        if cut_by_deadline:
            return ProviderError(
                context.name,
                ErrorKind.DEADLINE,
                t("error.deadline", seconds=f"{deadline.seconds:g}"),
                t("suggest.deadline"),
                model=model,
            )
        seconds, var = f"{context.settings.timeout:g}", context.var("timeout")
        return context.error(
            ErrorKind.TIMEOUT, t("error.read_timeout", seconds=seconds, var=var), t("suggest.read_timeout", var=var), model=model
        )

    def _rate_limited(self, context: ProviderContext, request: CompletionRequest, wait: float) -> ProviderError:
        """The skip of a provider that is rate-limited for ``wait`` seconds more."""
        model = request.model
        own = context.requests_per_minute.wait()
        if own > 0 and own >= context.quota.wait(model, _estimated_tokens(request)):
            message = t("error.own_rpm", rpm=context.settings.rpm, var=context.var("rpm"), seconds=f"{wait:.1f}")
        else:
            message = t("error.quota_reset", seconds=f"{wait:.1f}")
        return context.error(ErrorKind.RATE_LIMIT, message, t("suggest.wait", seconds=f"{wait:.1f}"), retry_after=wait, model=model)

    def _wait_too_long(self, context: ProviderContext, model: str, wait: float, deadline: Deadline) -> ProviderError:
        if wait > self._max_rate_limit_wait:
            limit, var = self._max_rate_limit_wait, "LLM_MAX_RATE_LIMIT_WAIT"
        else:
            limit, var = deadline.remaining(), "LLM_REQUEST_DEADLINE"
        return context.error(
            ErrorKind.RATE_LIMIT,
            t("error.wait_too_long", seconds=f"{wait:.1f}", limit=f"{limit:.1f}", var=var),
            t("suggest.wait_too_long", var=var),
            retry_after=wait,
            model=model,
        )

    def _shared_circuit_open(self, context: ProviderContext, model: str, seconds: float) -> ProviderError:
        message = t("error.circuit_open_shared", provider=context.name, model=model, seconds=f"{seconds:.1f}")
        return ProviderError(context.name, ErrorKind.CIRCUIT_OPEN, message, t("suggest.circuit_open"), model=model)

    def _circuit_open(self, context: ProviderContext, model: str, circuit: CircuitBreaker) -> ProviderError:
        if circuit.probing:
            message = t("error.circuit_probing", model=model)
        else:
            message = t("error.circuit_open", model=model, failures=circuit.failures, seconds=f"{circuit.retry_in():.1f}")
        # Built directly: nothing in it can hold a secret, and this is the hot path of a skip.
        return ProviderError(context.name, ErrorKind.CIRCUIT_OPEN, message, t("suggest.circuit_open"), model=model)

    def all_failed(self, failures: list[ProviderError], deadline: Deadline | None = None) -> AllProvidersFailedError:
        lines = []
        for failure in failures:
            who = failure.provider if failure.attempt <= 1 else t("error.attempt_label", provider=failure.provider, attempt=failure.attempt)
            lines.append(t("error.all_failed_line", provider=who, message=failure.message, suggestion=failure.suggestion))
        if deadline is not None and deadline.expired:
            title = t("error.all_failed_deadline", seconds=f"{deadline.seconds:g}")
        else:
            title = t("error.all_failed")
        return AllProvidersFailedError(failures, title, "\n".join(lines))
