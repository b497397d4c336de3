"""Deadlines for blocking database calls: a call that outlives its own has its connection cut.

psycopg's synchronous calls wait on the socket without a time limit, and a
server that hangs (frozen, or a network that drops every packet) would make a
cache lookup, and with it the event loop, wait for ever. A :class:`Watchdog`
thread watches the calls that :meth:`Watchdog.guard` wraps; when one is still
running at its deadline, the watchdog shuts the connection's socket down. The
blocked call then fails at once with the driver's own error (the connection
is broken and is opened again later), and :meth:`Watchdog.guard` turns it into
:class:`NoAnswer`, which says how long the server was given.

The watchdog thread starts with the first guarded call and sleeps while none
is running; arming a call wakes it only when the new deadline is the
earliest, so a busy store costs it about one wake-up per deadline.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class NoAnswer(Exception):
    """The server did not answer within the deadline; the connection was cut."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer from the server in {seconds:g} s")
        self.seconds = seconds


def shut_down(fileno: int) -> None:
    """Shut the socket ``fileno`` down both ways: a thread blocked on it wakes up to an end of stream."""
    try:
        duplicate = os.dup(fileno)
    except OSError:
        return  # closed already: nothing is blocked on it
    with socket.socket(fileno=duplicate) as sock:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more


class Watchdog:
    """Cuts the connection of a guarded call still running at its deadline (see the module).

    :param clock: seconds, monotonic (tests may pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._armed: dict[int, tuple[float, Callable[[], int]]] = {}
        self._cut: set[int] = set()
        self._tokens = itertools.count()
        self._changed = threading.Condition()
        self._wake_at: float | None = None  # when the thread wakes next (None: it sleeps until told)
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, fileno: Callable[[], int], seconds: float) -> Iterator[None]:
        """Run the body with a deadline of ``seconds``; past it, the socket ``fileno()`` names is shut down.

        :raises NoAnswer: when the body failed because the deadline cut its connection.
        """
        token = next(self._tokens)
        deadline = self._clock() + seconds
        with self._changed:
            self._armed[token] = (deadline, fileno)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="patcode-db-deadlines", daemon=True)
                self._thread.start()
            elif self._wake_at is None or deadline < self._wake_at:
                self._changed.notify()
        try:
            yield
        except Exception as exc:
            if self._disarm(token):
                raise NoAnswer(seconds) from exc
            raise
        else:
            self._disarm(token)

    def _disarm(self, token: int) -> bool:
        """Forget a call; whether its connection was cut."""
        with self._changed:
            self._armed.pop(token, None)
            if token in self._cut:
                self._cut.discard(token)
                return True
            return False

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = self._clock()
                for token, (deadline, fileno) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        self._cut.add(token)
                        try:
                            shut_down(fileno())
                        except Exception:  # a connection closed under us has no socket: nothing to cut
                            pass
                self._wake_at = min((deadline for deadline, _ in self._armed.values()), default=None)
                self._changed.wait(None if self._wake_at is None else max(self._wake_at - now, 0.001))
