"""Hedged streams: when the first provider is late with its first token, start the next one beside it.

``LLM_HEDGE=auto`` waits the primary's learned 95th percentile of the first
token (no hedge while nothing is learned); ``LLM_HEDGE=<seconds>`` waits that
long; ``off`` never hedges. Only a *different* provider whose circuit is
closed, that has its key and is not rate-limited is started as the hedge,
and only one. The first of the two to produce a first token wins; the other
is cancelled (its connection closed) and booked as a cancelled request
marked ``hedged``. Text is only ever shown from the winner: a stream is not
handed to the caller until its first token has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from patcode_core.config import FallbackEntry
from patcode_core.errors import PatCodeError, ProviderError
from patcode_core.routing.deadline import Deadline
from patcode_core.routing.race import RACER, Racer
from patcode_core.routing.router import Opened, Opener, Router
from patcode_core.types import CompletionRequest

_RACERS: weakref.WeakKeyDictionary[asyncio.Task[Opened], Racer] = weakref.WeakKeyDictionary()


def _racing(coro: Coroutine[Any, Any, Opened]) -> asyncio.Task[Opened]:
    """``coro`` as a task of its own, with its own :class:`Racer`."""
    racer = Racer()
    context = contextvars.copy_context()
    context.run(RACER.set, racer)
    task = asyncio.create_task(coro, context=context)
    _RACERS[task] = racer
    return task


def parse_hedge(setting: str) -> float | str | None:
    """``LLM_HEDGE`` as a policy: ``None`` (off), ``"auto"``, or seconds."""
    if setting == "off":
        return None
    if setting == "auto":
        return "auto"
    return float(setting)


def _second_provider(route: list[FallbackEntry]) -> int | None:
    """The index of the first entry whose provider differs from the first entry's."""
    return next((index for index, entry in enumerate(route) if entry.provider != route[0].provider), None)


async def hedged_walk(
    router: Router,
    route: list[FallbackEntry],
    make_request: Callable[[str], CompletionRequest],
    deadline: Deadline,
    failures: list[ProviderError],
    use_fallback: bool,
    opener: Opener,
    delay: float | None,
) -> Opened:
    """Like :meth:`Router.walk`, with the next provider started beside the first after ``delay`` seconds.

    :param delay: when to start the hedge; ``None``: no hedge (a plain walk).
    """
    second = _second_provider(route) if use_fallback and delay is not None else None
    if second is None or delay is None or not router.can_hedge(route[second]):
        return await router.walk(route, make_request, deadline, failures, use_fallback, opener)
    own: list[ProviderError] = []
    primary = _racing(_walk(router, route[:second], make_request, deadline, own, opener))
    done, _ = await asyncio.wait({primary}, timeout=delay)
    if done:
        failures.extend(own)
        opened = _result(primary)
        if opened is not None:
            return opened
        return await _rest(router, route, second, make_request, deadline, failures, opener)
    if not router.can_hedge(route[second]):  # its circuit opened, or it got rate-limited, while we waited
        return await _finish_alone(router, primary, route, second, make_request, deadline, own, failures, opener)
    router.note_hedge(route[0].provider, route[second].provider, delay)
    theirs: list[ProviderError] = []
    hedge = _racing(_walk(router, route[second : second + 1], make_request, deadline, theirs, opener))
    racing = {primary: 0, hedge: second}
    try:
        while racing:
            done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                offset = racing.pop(task)
                try:
                    opened = _result(task)
                except ProviderError as error:  # an error that ends the call...
                    if task is hedge and racing:  # ...unless it is the hedge's own refusal: the primary may still answer
                        continue
                    await _lose(racing)
                    failures.extend(own + theirs)
                    raise router.ending(failures, error) from None
                if opened is not None:
                    await _lose(racing)
                    failures.extend(own + theirs)
                    opened.position += offset
                    return opened
    except BaseException:
        await _lose(racing)
        raise
    failures.extend(own + theirs)
    return await _rest(router, route, second + 1, make_request, deadline, failures, opener)


async def _walk(
    router: Router,
    route: list[FallbackEntry],
    make_request: Callable[[str], CompletionRequest],
    deadline: Deadline,
    failures: list[ProviderError],
    opener: Opener,
) -> Opened:
    return await router.walk(route, make_request, deadline, failures, True, opener)


def _result(task: asyncio.Task[Opened]) -> Opened | None:
    """The task's Opened, or ``None`` when it failed in a way another provider may fix.

    An error that ends the call (a content filter, a bad request: no fallback) is raised.
    """
    error = task.exception()
    if error is None:
        return task.result()
    if isinstance(error, ProviderError) and not error.fallback:
        raise error
    if isinstance(error, PatCodeError):
        return None
    raise error


async def _lose(racing: dict[asyncio.Task[Opened], int]) -> None:
    """Stop the requests that lost: cancel the tasks still running, close a stream that won too late."""
    for task in racing:
        racer = _RACERS.get(task)
        if racer is not None:
            racer.lost = True
        task.cancel()
    for task in list(racing):
        with contextlib.suppress(BaseException):
            opened = await task
            close = getattr(opened.value, "close", None)
            opened.circuit.release()
            if close is not None:
                await close()
    racing.clear()


async def _finish_alone(
    router: Router,
    primary: asyncio.Task[Opened],
    route: list[FallbackEntry],
    second: int,
    make_request: Callable[[str], CompletionRequest],
    deadline: Deadline,
    own: list[ProviderError],
    failures: list[ProviderError],
    opener: Opener,
) -> Opened:
    try:
        await asyncio.wait({primary})
    except BaseException:
        await _lose({primary: 0})
        raise
    failures.extend(own)
    opened = _result(primary)
    if opened is not None:
        return opened
    return await _rest(router, route, second, make_request, deadline, failures, opener)


async def _rest(
    router: Router,
    route: list[FallbackEntry],
    start: int,
    make_request: Callable[[str], CompletionRequest],
    deadline: Deadline,
    failures: list[ProviderError],
    opener: Opener,
) -> Opened:
    """The walk goes on from ``route[start]``; with nothing left, every failure so far is the error."""
    if start >= len(route):
        raise router.all_failed(failures, deadline)
    opened = await router.walk(route[start:], make_request, deadline, failures, True, opener)
    opened.position += start
    return opened


__all__ = ["RACER", "Racer", "hedged_walk", "parse_hedge"]
