"""Streams along the route: the first token decides who answers; a stream cut later is never passed off as whole.

Before the first token a stream is treated like any request (retries,
circuits, rate limits, fallback), within ``LLM_FIRST_TOKEN_TIMEOUT``. After
it, every gap between chunks is bounded by ``LLM_STREAM_IDLE_TIMEOUT``, and a
stream that breaks — cut connection, no end marker, stall, an error inside
the stream, too many unreadable chunks — is either restarted on the next
provider (``LLM_STREAM_RECOVERY=restart``, announced with a
:class:`StreamRestarted` event) or ends in a :class:`StreamInterruptedError`
carrying the partial text (``=error``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from patcode_core.config import FallbackEntry
from patcode_core.connection_slots import CURRENT_SHARD
from patcode_core.context import ProviderContext
from patcode_core.errors import ErrorKind, PatCodeError, ProviderError, StreamInterruptedError
from patcode_core.i18n import t
from patcode_core.plugin_guard import guarded, run_in_thread
from patcode_core.plugins import PluginHost
from patcode_core.routing.deadline import Deadline
from patcode_core.routing.hedging import hedged_walk
from patcode_core.routing.learned_limits import LearnedLimits, StreamLimits
from patcode_core.routing.router import Opened, Router
from patcode_core.types import (
    CachedAnswer,
    CompletionRequest,
    CompletionResult,
    ProviderReply,
    StreamChunk,
    StreamEvent,
    StreamRestarted,
    StreamStarted,
    TextDelta,
    Usage,
)

RESTART = "restart"


@dataclass(slots=True)
class LiveStream:
    """A stream whose first text has arrived; it holds one of the provider's connection slots until closed."""

    chunks: AsyncIterator[StreamChunk]
    first: StreamChunk
    started: float
    time_to_first_token: float
    release: Callable[[], None]
    #: Seconds from sending to the first chunk of any kind.
    time_to_first_byte: float = 0.0
    #: The limits this stream runs under (learned, or the defaults).
    limits: StreamLimits | None = None
    holds_slot: bool = True
    _closed: bool = field(default=False)

    async def close(self) -> None:
        """Close the provider's response and give the connection slot back (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            closer = getattr(self.chunks, "aclose", None)
            if closer is not None:
                await closer()
        finally:
            self.release()


@dataclass(slots=True)
class _Answer:
    """What a stream has said so far."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def take(self, chunk: StreamChunk) -> None:
        if chunk.text:
            self.parts.append(chunk.text)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = (self.usage or Usage()).merged(chunk.usage) if chunk.usage is not None else self.usage
        self.model = chunk.model or self.model
        self.extra.update(chunk.extra)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _replay_pieces(text: str, size: int = 64) -> list[str]:
    """A cached answer cut into pieces, so it arrives like a stream."""
    return [text[index : index + size] for index in range(0, len(text), size)] or [text]


async def _guarded_steps(chunks: AsyncIterator[StreamChunk], plugin: str, limit: float) -> AsyncIterator[StreamChunk]:
    """An async generator's chunks, each step bounded like any async hook (a busy loop is broken)."""
    try:
        while True:
            try:
                chunk = await guarded(anext(chunks), plugin, limit)
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()


async def _whole_answer(reply: ProviderReply) -> AsyncIterator[StreamChunk]:
    yield StreamChunk(reply.text, reply.finish_reason, reply.usage, reply.model, done=True, extra=reply.extra)


async def _from_thread(chunks: Iterator[StreamChunk], what: str) -> AsyncIterator[StreamChunk]:
    """A plain generator's chunks, each read in a daemon thread (abandoned, not waited for, if it hangs)."""
    end = object()

    def step() -> object:
        return next(chunks, end)

    try:
        while (chunk := await run_in_thread(step, what)) is not end:
            yield chunk  # type: ignore[misc]
    finally:
        closer = getattr(chunks, "close", None)
        if closer is not None:
            try:
                closer()
            except ValueError:  # still running in its worker thread (we gave up waiting); it ends by itself
                pass


#: How often a stream takes the timings every instance learned (``LLM_STATE_URL``), per provider and model.
SHARED_TIMINGS_EVERY = 30.0


class StreamRunner:
    """Streams completions for the manager.

    :param router: walks the route and books successes and failures.
    :param host: to find each provider's ``provider_stream``.
    :param limits: the first-token and idle limits of each provider and model, learned from its streams.
    :param recovery: ``restart`` or ``error`` (``LLM_STREAM_RECOVERY``).
    :param hedge: ``LLM_HEDGE`` as :func:`~patcode_core.routing.hedging.parse_hedge` reads it.
    """

    def __init__(
        self,
        router: Router,
        host: PluginHost,
        log: Any,
        *,
        limits: LearnedLimits,
        recovery: str,
        hedge: float | str | None = None,
    ) -> None:
        self._router = router
        self._host = host
        self._log = log
        self.limits = limits
        self._adopted: dict[tuple[str, str], float] = {}
        self.recovery = recovery
        #: ``None`` (off), ``"auto"`` or seconds (``LLM_HEDGE``).
        self.hedge = hedge

    async def run(
        self, route: list[FallbackEntry], make_request: Callable[[str], CompletionRequest], use_fallback: bool
    ) -> AsyncIterator[StreamEvent]:
        """Yield :class:`StreamStarted`, text deltas, maybe :class:`StreamRestarted`, then the result."""
        deadline = self._router.new_deadline()
        if self._router.shared is not None:
            await self._adopt_shared_timings(route)
        failures: list[ProviderError] = []
        restarts: list[StreamRestarted] = []
        broken: tuple[str, str, str] | None = None  # provider, reason, text shown
        remaining = route
        while True:
            try:
                if broken is None:  # the first walk may be hedged; a restart goes on along the route
                    delay = self._hedge_delay(remaining[0], make_request)
                    opened = await hedged_walk(
                        self._router, remaining, make_request, deadline, failures, use_fallback, self._open, delay
                    )
                else:
                    opened = await self._router.walk(remaining, make_request, deadline, failures, use_fallback, self._open)
            except PatCodeError as error:
                if broken is None:
                    raise
                raise self._interrupted(broken[0], broken[2], error, failures) from None
            name = opened.context.name
            if broken is not None:
                restart = StreamRestarted(broken[0], name, broken[1], broken[2])
                restarts.append(restart)
                self._log.warning("stream_restarted", from_provider=broken[0], to_provider=name, reason=broken[1])
                yield restart
            if isinstance(opened.value, CachedAnswer):  # a cached answer replays as a stream
                result = self._router.from_cache(opened, failures)
                yield StreamStarted(name, opened.request.model, 0.0, cached=True, fallback=name != route[0].provider)
                for piece in _replay_pieces(result.text):
                    yield TextDelta(piece, name)
                yield replace(result, time_to_first_token=0.0, restarts=tuple(restarts))
                return
            live: LiveStream = opened.value
            answer = _Answer()
            booked = completed = False
            try:
                yield StreamStarted(name, opened.request.model, live.time_to_first_token, fallback=name != route[0].provider)
                answer.take(live.first)
                yield TextDelta(live.first.text, name)
                done = live.first.done
                longest_gap, last = 0.0, time.perf_counter()
                while not done:
                    chunk = await self._next(live, deadline, opened)
                    now = time.perf_counter()
                    longest_gap, last = max(longest_gap, now - last), now
                    if chunk.skipped is not None:
                        self._log.warning("stream_chunk_skipped", provider=name, detail=chunk.skipped)
                        continue
                    answer.take(chunk)
                    if chunk.text:
                        yield TextDelta(chunk.text, name)
                    done = chunk.done
                completed = True
            except ProviderError as error:
                booked = True
                self._router.broke(opened, error, time.perf_counter() - live.started, failures)
                following = remaining[opened.position + 1 :]
                if self.recovery != RESTART or not use_fallback or not error.fallback or not following or deadline.expired:
                    raise self._interrupted(name, answer.text, error, failures) from None
                broken = (name, error.message, answer.text)
                remaining = following
                continue
            finally:
                if not booked and not completed:  # the caller stopped or was cancelled: no verdict on the provider
                    opened.circuit.release()
                    self._router.record_cancelled(
                        name, opened.request, time.perf_counter() - live.started, opened.attempts > 1
                    )
                await live.close()
            latency = time.perf_counter() - live.started
            usage = answer.usage or Usage()
            whole = CachedAnswer(answer.text, answer.finish_reason, usage.input_tokens, usage.output_tokens, answer.model)
            cost = self._router.succeeded(opened, latency, failures, whole, usage, live.time_to_first_token)
            self.limits.record(name, opened.request.model, live.time_to_first_byte, live.time_to_first_token, longest_gap)
            yield CompletionResult(
                text=answer.text,
                provider=name,
                model=answer.model or opened.request.model,
                finish_reason=answer.finish_reason,
                usage=answer.usage or Usage(),
                latency=latency,
                failures=tuple(failures),
                extra=answer.extra,
                attempts=opened.attempts,
                time_to_first_token=live.time_to_first_token,
                restarts=tuple(restarts),
                cost=cost,
            )
            return

    def _hedge_delay(self, entry: FallbackEntry, make_request: Callable[[str], CompletionRequest]) -> float | None:
        """When to start a hedge beside ``entry`` (``LLM_HEDGE``): its learned p95 of the first token, or a fixed time."""
        if self.hedge is None:
            return None
        if self.hedge != "auto":
            return float(self.hedge)
        context = self._router.context_of(entry.provider)
        if context is None:
            return None
        model = entry.model or context.settings.model
        return self.limits.limits(entry.provider, model, context.settings.timeout).hedge_after

    async def _adopt_shared_timings(self, route: list[FallbackEntry]) -> None:
        """Learn from every instance's streams: the first two routes' shared timings, at most every
        :data:`SHARED_TIMINGS_EVERY` seconds each (two round trips then; none in between)."""
        shared = self._router.shared
        now = time.monotonic()
        for entry in route[:2]:
            context = self._router.context_of(entry.provider)
            if context is None:
                continue
            model = entry.model or context.settings.model
            if now - self._adopted.get((entry.provider, model), -math.inf) < SHARED_TIMINGS_EVERY:
                continue
            self._adopted[(entry.provider, model)] = now
            tokens, gaps = await asyncio.gather(shared.latencies(entry.provider, model),
                                                shared.latencies(entry.provider, f"{model}:gap"))
            self.limits.adopt(entry.provider, model, tokens, gaps)

    # -- opening: up to the first token --------------------------------

    async def _open(
        self, context: ProviderContext, request: CompletionRequest, deadline: Deadline, retry: bool
    ) -> tuple[LiveStream, float]:
        """Start the stream and wait for its first text, inside the first-token limit and the deadline."""
        limits = self.limits.limits(context.name, request.model, context.settings.timeout)
        limit = limits.first_token
        budget = min(limit, deadline.remaining())
        chunks: AsyncIterator[StreamChunk] | None = None
        first_byte: list[float] = []

        def to_error(exc: Exception) -> ProviderError:
            if isinstance(exc, TimeoutError) and budget >= limit:
                return self._no_first_token(context, request.model, limits)
            return self._router.as_provider_error(exc, context, request.model, deadline, cut_by_deadline=True)

        with self._router.booked(context, request, retry, to_error) as started:
            try:
                async with asyncio.timeout(budget):
                    chunks = await self._chunks(context, request)
                    first = await self._first_text(chunks, context, request.model, first_byte)
            except BaseException:
                await self._close_quietly(context, chunks)
                raise
        waited = time.perf_counter() - started
        to_first_byte = (first_byte[0] - started) if first_byte else waited
        release = functools.partial(context.slots.release, CURRENT_SHARD.get())  # the slot this task was given
        return LiveStream(chunks, first, started, waited, release, to_first_byte, limits), waited

    async def _chunks(self, context: ProviderContext, request: CompletionRequest) -> AsyncIterator[StreamChunk]:
        """The provider's chunks: its ``provider_stream``, or its whole answer as one chunk."""
        caller = self._host.caller("provider_stream", context.name)
        if not caller.get_hookimpls():
            return _whole_answer(await self._router.reply_of(context, request))
        result = caller(provider=context.name, request=request, context=context)
        if inspect.isawaitable(result):
            result = await result
        plugin = self._host.plugin_of(context.name)
        if hasattr(result, "__anext__"):
            return _guarded_steps(result, plugin, context.settings.timeout)
        if hasattr(result, "__next__"):
            return _from_thread(result, f"{context.name}.provider_stream")
        raise TypeError(t("plugin.bad_reply", got=type(result).__name__))

    async def _first_text(
        self, chunks: AsyncIterator[StreamChunk], context: ProviderContext, model: str, first_byte: list[float]
    ) -> StreamChunk:
        """Read until the first chunk with text (noting in ``first_byte`` when any chunk came first);
        a stream that ends first is an empty or broken answer."""
        before = _Answer()  # counts and model sent before the first text (Anthropic's input tokens) are kept
        async for chunk in chunks:
            if not first_byte:
                first_byte.append(time.perf_counter())
            if not isinstance(chunk, StreamChunk):
                raise TypeError(t("plugin.bad_reply", got=type(chunk).__name__))
            if chunk.skipped is not None:
                self._log.warning("stream_chunk_skipped", provider=context.name, detail=chunk.skipped)
                continue
            if chunk.text:
                if before.usage is None and before.model is None and not before.extra:
                    return chunk
                before.take(replace(chunk, text=""))
                return replace(chunk, usage=before.usage, model=before.model, extra=before.extra)
            if not chunk.done:
                before.take(chunk)
                continue
            suggestion = t("suggest.raise_max_tokens") if chunk.finish_reason == "length" else t("suggest.retry_later")
            raise context.error(ErrorKind.MALFORMED_RESPONSE, t("error.malformed", detail="empty stream"), suggestion, model=model)
        raise context.error(ErrorKind.CONNECTION, t("error.stream_cut"), t("suggest.retry_later"), model=model)

    # -- reading: after the first token --------------------------------

    async def _next(self, live: LiveStream, deadline: Deadline, opened: Opened) -> StreamChunk:
        """The next chunk within the idle limit and the deadline; a broken stream raises a ProviderError."""
        context, model = opened.context, opened.request.model
        limits = live.limits or self.limits.limits(context.name, model, context.settings.timeout)
        limit = limits.idle
        budget = min(limit, deadline.remaining())
        try:
            async with asyncio.timeout(budget):
                chunk = await anext(live.chunks)
        except StopAsyncIteration:
            raise context.error(ErrorKind.CONNECTION, t("error.stream_cut"), t("suggest.retry_later"), model=model) from None
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            if budget >= limit:
                seconds = f"{limit:g}"
                why, var = self._limit_source(context, limits.idle, limits.gap_p99, self.limits.idle_ceiling, "LLM_STREAM_IDLE_TIMEOUT")
                raise context.error(
                    ErrorKind.TIMEOUT,
                    t("error.stream_stalled", seconds=seconds, var=why),
                    t("suggest.timeout", seconds=seconds, var=var),
                    model=model,
                ) from None
            raise self._router.as_provider_error(TimeoutError(), context, model, deadline, cut_by_deadline=True) from None
        except Exception as exc:
            raise self._router.as_provider_error(exc, context, model, deadline, cut_by_deadline=False) from None
        if not isinstance(chunk, StreamChunk):
            raise self._router.as_provider_error(
                TypeError(t("plugin.bad_reply", got=type(chunk).__name__)), context, model, deadline, cut_by_deadline=False
            )
        return chunk

    async def _close_quietly(self, context: ProviderContext, chunks: AsyncIterator[StreamChunk] | None) -> None:
        """Close a stream that already failed; a second failure while closing is only logged."""
        closer = getattr(chunks, "aclose", None)
        if closer is None:
            return
        try:
            await closer()
        except Exception as exc:  # closing must not hide why the stream failed
            self._log.debug("stream_close_failed", provider=context.name, error=repr(exc))

    # -- errors --------------------------------------------------------

    def _no_first_token(self, context: ProviderContext, model: str, limits: StreamLimits) -> ProviderError:
        seconds = f"{limits.first_token:g}"
        why, var = self._limit_source(
            context, limits.first_token, limits.first_token_p99, self.limits.first_token_ceiling, "LLM_FIRST_TOKEN_TIMEOUT"
        )
        return context.error(
            ErrorKind.TIMEOUT,
            t("error.first_token", seconds=seconds, var=why),
            t("suggest.timeout", seconds=seconds, var=var),
            model=model,
        )

    @staticmethod
    def _limit_source(
        context: ProviderContext, limit: float, p99: float | None, ceiling: float, ceiling_var: str
    ) -> tuple[str, str]:
        """(why the limit is what it is, the variable that raises it), for a timeout's message."""
        if limit >= min(ceiling, context.settings.timeout):
            var = ceiling_var if ceiling <= context.settings.timeout else context.var("timeout")
            return var, var
        if p99 is None:
            return t("limits.no_history", var=ceiling_var), ceiling_var
        return t("limits.learned", p99=f"{p99:.2g}", var=ceiling_var), ceiling_var

    def _interrupted(
        self, provider: str, partial: str, cause: PatCodeError, failures: list[ProviderError]
    ) -> StreamInterruptedError:
        reason = cause.message if isinstance(cause, ProviderError) else str(cause).splitlines()[0]
        suggestion = t("suggest.stream_interrupted") if self.recovery == RESTART else t("suggest.stream_recovery_error")
        return StreamInterruptedError(
            provider,
            partial,
            tuple(failures),
            t("error.stream_interrupted", provider=provider, chars=len(partial), reason=reason.rstrip(".")),
            suggestion,
        )


__all__ = ["LiveStream", "StreamRunner"]
