"""Plugin code run under a time limit: a stuck plugin is abandoned and reported, never waited for.

Three kinds of stuck plugin, three answers:

- **Load time** (import, ``provider_info``): :func:`call_with_limit` runs the
  call in a daemon thread and gives up after ``PATCODE_PLUGIN_TIMEOUT``
  seconds (default 5). ``sys.exit()`` or any other ``BaseException`` at
  import is caught there too: the plugin is reported broken, the rest load.
- **Plain (sync) hooks**: :func:`run_in_thread` runs each call in its own
  daemon thread, not in the event loop's executor, so a call that never
  returns is left behind when its time is up and never keeps the process
  from exiting (an executor's threads are joined at exit).
- **Async hooks that never yield** (a busy loop): :func:`guarded` drives the
  hook's coroutine one step at a time, and a watchdog thread breaks a step
  that runs longer than its limit by raising :class:`PluginBlockedLoop`
  inside it (``PyThreadState_SetAsyncExc``). A step blocked inside C code
  (``time.sleep`` in an ``async def``) cannot be interrupted that way; when
  :data:`HARD_EXIT` is on (the CLI), the watchdog then ends the process
  with a readable message so a command still exits.

What PatCode cannot do: stop a thread that is already running, or protect
against a plugin that is malicious rather than broken (it is code you
installed, running with your rights).
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from patcode_core.i18n import t
from patcode_core.log import get_logger

T = TypeVar("T")
PLUGIN_TIMEOUT_ENV = "PATCODE_PLUGIN_TIMEOUT"
DEFAULT_PLUGIN_TIMEOUT = 5.0
#: How often the watchdog looks at the step in flight.
WATCH_INTERVAL = 0.1
#: After interrupting a step, how long the watchdog waits before ending the process (HARD_EXIT only).
HARD_EXIT_GRACE = 3.0
#: Set by the CLI: a plugin that holds the event loop in C code ends the process instead of hanging it.
HARD_EXIT = False
HARD_EXIT_CODE = 1


class PluginTimeout(Exception):
    """A plugin call did not return within its limit (the thread running it was abandoned)."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(t("error.plugin_timeout", what=what, seconds=f"{seconds:g}"))
        self.what = what
        self.seconds = seconds


class PluginExited(Exception):
    """A plugin raised ``SystemExit`` or another ``BaseException`` that is not an ordinary error."""


class _StepOverrun(BaseException):
    """Raised by the watchdog inside a plugin step that ran past its limit.

    A ``BaseException``, so a plugin's own ``except Exception`` does not swallow it.
    """


class PluginBlockedLoop(Exception):
    """An async hook ran past its limit without yielding to the event loop."""

    def __init__(self, plugin: str, seconds: float) -> None:
        super().__init__(t("error.plugin_blocked_loop", plugin=plugin, seconds=f"{seconds:g}"))


def plugin_timeout() -> float:
    """``PATCODE_PLUGIN_TIMEOUT`` in seconds (a bad value falls back to the default; config reports it)."""
    raw = os.environ.get(PLUGIN_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_PLUGIN_TIMEOUT
    except ValueError:
        return DEFAULT_PLUGIN_TIMEOUT
    return value if math.isfinite(value) and value > 0 else DEFAULT_PLUGIN_TIMEOUT


def _as_exception(exc: BaseException) -> Exception:
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, SystemExit):
        return PluginExited(f"sys.exit({exc.code!r})")
    return PluginExited(type(exc).__name__)


def call_with_limit(function: Callable[[], T], what: str, seconds: float | None = None) -> T:
    """``function()`` in a daemon thread, for at most ``seconds``; raises :class:`PluginTimeout` after.

    Any ``BaseException`` the call raises (``sys.exit()`` included) comes back
    as an ordinary exception, so a plugin cannot end PatCode.
    """
    limit = plugin_timeout() if seconds is None else seconds
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, function()))
        except BaseException as exc:  # noqa: BLE001 — everything a plugin raises is its own failure
            box.append((False, _as_exception(exc)))

    thread = threading.Thread(target=target, name=f"patcode-plugin:{what}", daemon=True)
    thread.start()
    thread.join(limit)
    if not box:
        get_logger().warning("plugin_abandoned", what=what, seconds=f"{limit:g}")
        raise PluginTimeout(what, limit)
    ok, value = box[0]
    if not ok:
        raise value
    return value


async def run_in_thread(function: Callable[..., T], what: str, /, **kwargs: Any) -> T:
    """``function(**kwargs)`` in its own daemon thread, awaited; cancelling abandons the thread (reported)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            outcome = (True, function(**kwargs))
        except BaseException as exc:  # noqa: BLE001 — handed to the awaiting task
            outcome = (False, _as_exception(exc))
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer any more
            pass

    thread = threading.Thread(target=target, name=f"patcode-plugin:{what}", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        return await future
    except asyncio.CancelledError:
        if thread.is_alive():
            get_logger().warning("plugin_abandoned", what=what, seconds=f"{time.monotonic() - started:.1f}")
        raise


class _Watchdog:
    """One daemon thread watching the plugin step in flight on each event-loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[int, list[Any]] = {}  # thread id -> [deadline, plugin, limit, interrupted_at]
        self._thread: threading.Thread | None = None

    def enter(self, plugin: str, limit: float) -> int:
        ident = threading.get_ident()
        with self._lock:
            self._steps[ident] = [time.monotonic() + limit, plugin, limit, None]
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="patcode-watchdog", daemon=True)
                self._thread.start()
        return ident

    def leave(self, ident: int) -> None:
        with self._lock:
            step = self._steps.pop(ident, None)
        if step is not None and step[3] is not None:
            # Interrupted just as it ended: clear the pending exception and report it here.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)
            raise _StepOverrun

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            interrupted: list[tuple[str, float]] = []
            stuck: tuple[str, float] | None = None
            with self._lock:  # only the check and the interruption; printing happens outside
                for ident, step in self._steps.items():
                    deadline, plugin, limit, interrupted_at = step
                    if interrupted_at is None and now > deadline:
                        step[3] = now
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(_StepOverrun))
                        interrupted.append((plugin, limit))
                    elif interrupted_at is not None and HARD_EXIT and now - interrupted_at > HARD_EXIT_GRACE:
                        stuck = (plugin, limit)
            for plugin, limit in interrupted:
                get_logger().warning("plugin_blocked_loop", plugin=plugin, seconds=f"{limit:g}")
            if stuck is not None:
                self._hard_exit(*stuck)

    @staticmethod
    def _hard_exit(plugin: str, limit: float) -> None:
        from patcode_core.terminal.render import error_text

        sys.stderr.write(error_text(PluginBlockedLoop(plugin, limit)) + "\n")
        sys.stderr.flush()
        os._exit(HARD_EXIT_CODE)


_WATCHDOG = _Watchdog()


class _Guarded:
    """Awaits a plugin's coroutine step by step, each step under the watchdog."""

    __slots__ = ("_awaitable", "_plugin", "_limit")

    def __init__(self, awaitable: Any, plugin: str, limit: float) -> None:
        self._awaitable = awaitable
        self._plugin = plugin
        self._limit = limit

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self._awaitable.__await__() if not hasattr(self._awaitable, "send") else self._awaitable
        send: Any = None
        throw: BaseException | None = None
        while True:
            ident = _WATCHDOG.enter(self._plugin, self._limit)
            try:
                try:
                    yielded = inner.send(send) if throw is None else inner.throw(throw)
                finally:
                    _WATCHDOG.leave(ident)
            except StopIteration as stop:
                return stop.value
            except _StepOverrun:
                inner.close()
                raise PluginBlockedLoop(self._plugin, self._limit) from None
            try:
                send, throw = (yield yielded), None
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:  # noqa: BLE001 — cancellation and errors go on to the plugin
                send, throw = None, exc


def guarded(awaitable: Awaitable[T], plugin: str, limit: float) -> Awaitable[T]:
    """``awaitable`` (a plugin's coroutine) with each step bounded by ``limit`` seconds of the event loop."""
    return _Guarded(awaitable, plugin, limit)  # type: ignore[return-value]


__all__ = [
    "PluginBlockedLoop",
    "PluginExited",
    "PluginTimeout",
    "call_with_limit",
    "guarded",
    "plugin_timeout",
    "run_in_thread",
]
