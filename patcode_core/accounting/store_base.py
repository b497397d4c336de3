"""What both usage stores share: rows queued on the caller's side, written by one thread in batches.

:class:`QueuedStore` never makes a caller wait on the database:
:meth:`~QueuedStore.record` puts a row on a queue and a writer thread stores
the queue in batches. The writer never dies: a batch that fails is counted in
:attr:`~QueuedStore.lost` with the reason in :attr:`~QueuedStore.error`, and
the next batches are written when they can be. A store whose database is a
server (:attr:`~QueuedStore.holds_rows`) keeps the batches it could not write
because the server was away instead, up to :data:`HELD_MAX` rows, and writes
them first, in order, as soon as it answers: an outage loses no history unless
it outlasts that many rows, or the process. An answer put in the cache is
kept in memory too until well after the writer stored it, so a lookup right
after finds it.

A subclass brings the database: :meth:`~QueuedStore._insert` (one batch, one
transaction), :meth:`~QueuedStore.query`, :meth:`~QueuedStore._delete`,
:meth:`~QueuedStore._close_database` and :attr:`~QueuedStore.rows_sql`.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Any

from patcode_core.accounting.schema import AS_ROW, Attempt
from patcode_core.safe_text import without_surrogates
from patcode_core.types import CachedAnswer

BATCH = 256
#: The writer wakes this often (or when a batch is full, or on flush); waking per row cost
#: the event loop ~0.3 ms a call in GIL hand-overs.
WRITE_INTERVAL = 0.25
#: Cache entries kept in memory until the writer has stored them (and a little after).
RECENT = 1024
#: Rows a store that holds them (:attr:`QueuedStore.holds_rows`) keeps while its server is away; beyond, the
#: oldest are counted as lost.
HELD_MAX = 20_000


class StoreUnavailable(Exception):
    """The database cannot be used; the message says why (history is then off)."""


def safe_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row, with its text made storable (the common all-ASCII row is returned as it is)."""
    if all(type(value) is not str or value.isascii() for value in row):
        return row
    return tuple(without_surrogates(value) if type(value) is str else value for value in row)


def _write_loop(ref: weakref.ReferenceType[QueuedStore]) -> None:
    """The writer thread: wake every :data:`WRITE_INTERVAL` (or when asked), store what is queued."""
    while True:
        store = ref()
        if store is None:
            return
        wake = store._wake
        del store
        wake.wait(WRITE_INTERVAL)
        store = ref()
        if store is None:
            return
        wake.clear()
        try:
            store._drain()
        except Exception as exc:  # the writer must outlive any one failure; it is recorded
            store._failed(0, exc)
        if store._stopping:
            return
        del store


class QueuedStore:
    """The queue, the writer thread and the public methods of a usage store; subclasses bring the database."""

    #: Errors that fail a whole batch alike (a full disk, a server gone): its rows are counted as lost at once,
    #: not tried again one by one.
    batch_errors: tuple[type[BaseException], ...] = ()
    #: Whether the rows live on a database server (shared by every instance) rather than in a local file.
    remote = False
    #: Why the database is read-only (``None``: it is writable). Rows recorded meanwhile count as lost.
    read_only: str | None = None
    #: Whether a batch that fails with one of :attr:`batch_errors` is kept and written when the database answers
    #: again (a server that went away), rather than counted as lost (a full disk, a locked file).
    holds_rows = False

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the recent answers (and, in SQLite, the shared connection)
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # The thread holds the store only weakly: a store dropped without close() lets its thread end.
        self._writer = threading.Thread(target=_write_loop, args=(weakref.ref(self),), name="patcode-store", daemon=True)
        self._error: str | None = None
        self._lost = 0
        self._pending = 0
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._recent: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()
        self._held: deque[tuple[str, Any]] = deque()

    # -- what a database brings ------------------------------------------

    @property
    def persistent(self) -> bool:
        """True when the rows outlive the process (a file, even a read-only one, or a server)."""
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Where the rows are, for messages: a path, ``:memory:``, or a URL without its password."""
        raise NotImplementedError

    @property
    def rows_sql(self) -> str:
        """A ``SELECT`` of every history row for the figures, with its weight ``n`` and its unknowns.

        Columns: ``at, provider, model, outcome, error_kind, cached, fallback_from, input_tokens,
        output_tokens, cost, n, unpriced, uncounted``. ``unpriced`` counts the rows whose cost is
        unknown, ``uncounted`` those whose token counts are (stored as NULL, never 0). Wrap it as a
        subquery with an alias (``FROM (...) AS every_row``): PostgreSQL needs one.
        """
        raise NotImplementedError

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read, ``?`` placeholders (written rows become visible after :meth:`flush`)."""
        raise NotImplementedError

    def _insert(self, batch: Sequence[tuple[str, Any]]) -> None:
        """Store one batch of ``(kind, row)`` (``attempt``, ``cache``, ``timing``) in one transaction."""
        raise NotImplementedError

    def _delete(self, sql: str, parameters: tuple[Any, ...] = ()) -> int:
        """Run one ``DELETE`` in a transaction; its row count. :raises PatCodeError: when it fails."""
        raise NotImplementedError

    def _close_database(self) -> None:
        raise NotImplementedError

    def _lookup(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A read on a caller's path (a cache lookup, timings to learn from): :meth:`query` unless overridden."""
        return self.query(sql, parameters)

    def _writable(self) -> None:
        """Raise a :class:`~patcode_core.errors.PatCodeError` when nothing may be deleted (a read-only file)."""

    # -- writing (off the caller's path) ------------------------------

    def _start_writer(self) -> None:
        self._writer.start()

    def record(self, attempt: Attempt) -> None:
        """Queue one attempt; returns at once."""
        self._enqueue(("attempt", AS_ROW(attempt)))

    def put_cached(self, key: str, provider: str, model: str, ttl: float, answer: CachedAnswer) -> None:
        """Queue one answer for the cache (its text made storable first, so memory and disk agree)."""
        text = without_surrogates(answer.text)
        if text is not answer.text:
            answer = dataclasses.replace(answer, text=text)
        now = time.time()
        row = (key, provider, model, now, now + ttl, answer.text, answer.finish_reason, answer.input_tokens,
               answer.output_tokens, answer.model)
        with self._lock:  # visible at once, before the writer gets to it
            self._recent[key] = (now + ttl, answer)
            self._recent.move_to_end(key)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        self._enqueue(("cache", row))

    def record_timing(self, provider: str, model: str, first_byte: float, first_token: float, gap: float) -> None:
        """Queue one streamed answer's timings (seconds); returns at once."""
        self._enqueue(("timing", (time.time(), provider, model, first_byte, first_token, gap)))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        if self.read_only is not None:
            with self._idle:
                self._lost += 1
            return
        with self._idle:
            self._pending += 1
            full = self._pending >= BATCH
        self._queue.put(item)
        if full:
            self._wake.set()

    def _drain(self) -> None:
        """Write the held rows, then every queued row, in batches (each written, held or counted as lost).

        While the held rows cannot be written, new rows join them without a try: one failed try per wake-up.
        """
        reachable = self._write_held()
        while True:
            batch: list[tuple[str, Any]] = []
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            reachable = self._write(batch, reachable)

    def _write(self, batch: Sequence[tuple[str, Any]], reachable: bool = True) -> bool:
        """Store one batch in one transaction; on a failure, what can be stored row by row, the rest counted as lost.

        :param reachable: whether to try at all (``False``: the database is away; the batch is held).
        :return: whether the database could be reached.
        """
        try:
            if not reachable:
                self._hold(batch, None)
                return False
            return self._insert_or_hold(batch)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _store(self, batch: Sequence[tuple[str, Any]]) -> BaseException | None:
        """Insert one batch in one transaction; when a row is refused, the others one by one (that row is lost).

        :return: the error that fails the whole batch (one of :attr:`batch_errors`), else ``None``.
        """
        try:
            self._insert(batch)
        except self.batch_errors as exc:  # the database (full, locked, gone): every row would fail alike
            return exc
        except Exception:  # a row the database refuses (a number too large): store the others
            for item in batch:
                try:
                    self._insert((item,))
                except Exception as exc:  # counted and reported, never raised in the writer
                    self._failed(1, exc)
        return None

    def _insert_or_hold(self, batch: Sequence[tuple[str, Any]]) -> bool:
        exc = self._store(batch)
        if exc is None:
            return True
        if not self.holds_rows:
            self._failed(len(batch), exc)
            return True
        self._hold(batch, exc)
        return False

    def _hold(self, batch: Sequence[tuple[str, Any]], exc: BaseException | None) -> None:
        """Keep rows to write later (the oldest beyond :data:`HELD_MAX` are counted as lost)."""
        with self._idle:
            self._held.extend(batch)
            dropped = 0
            while len(self._held) > HELD_MAX:
                self._held.popleft()
                dropped += 1
            self._lost += dropped
            if exc is not None:
                self._error = self._describe(exc)

    def _write_held(self) -> bool:
        """Write the held rows, oldest first, a batch at a time; whether the database could be reached."""
        while self._held:
            with self._idle:
                batch = list(itertools.islice(self._held, BATCH))
            exc = self._store(batch)
            if exc is not None:
                with self._idle:
                    self._error = self._describe(exc)
                return False
            with self._idle:
                for _ in batch:
                    self._held.popleft()
        return True

    def _failed(self, rows: int, exc: BaseException) -> None:
        with self._idle:
            self._lost += rows
            self._error = self._describe(exc)

    def _describe(self, exc: BaseException) -> str:
        """A failure as :attr:`error` shows it."""
        return f"{type(exc).__name__}: {exc}"

    @property
    def error(self) -> str | None:
        """Why the last rows that could not be written were lost (``None`` while every row was written)."""
        return self._error

    @property
    def held(self) -> int:
        """Rows kept while the server is away, to be written when it answers (see :attr:`holds_rows`)."""
        return len(self._held)

    @property
    def lost(self) -> int:
        """Rows (history and cache) that could not be written so far: a write failure, or a read-only database."""
        return self._lost

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued row is written (or held, or counted as lost)."""
        self._wake.set()
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer, close the database."""
        if self._closed:
            return
        self._closed = True
        if self._writer.is_alive():
            self.flush()
            self._stopping = True
            self._wake.set()
            self._writer.join(timeout=10)
        # One last try for the held rows (unless the writer is stuck on the server); what is left is lost now.
        if self._held and (self._writer.is_alive() or not self._write_held()):
            with self._idle:
                self._lost += len(self._held)
                self._held.clear()
        self._close_database()

    # -- reading -------------------------------------------------------

    def timings(self, provider: str, model: str, limit: int) -> list[tuple[float, float, float]]:
        """The last ``limit`` (first_byte, first_token, gap) of ``provider`` and ``model``, oldest first."""
        rows = self._lookup(
            "SELECT first_byte, first_token, gap FROM timings WHERE provider = ? AND model = ? ORDER BY id DESC LIMIT ?",
            (provider, model, limit),
        )
        return [(float(a), float(b), float(c)) for a, b, c in reversed(rows)]

    def cached(self, key: str, now: float | None = None) -> CachedAnswer | None:
        """The cached answer for ``key`` unless it expired."""
        moment = time.time() if now is None else now
        with self._lock:
            recent = self._recent.get(key)
        if recent is not None and recent[0] > moment:
            return recent[1]
        rows = self._lookup(
            "SELECT text, finish_reason, input_tokens, output_tokens, answer_model FROM cache WHERE key = ? AND expires > ?",
            (key, moment),
        )
        return CachedAnswer(*rows[0]) if rows else None

    def clear_cache(self, provider: str | None = None) -> int:
        """Forget cached answers (of one provider); returns how many.

        :raises PatCodeError: when the database is read-only or the deletion fails; nothing is forgotten then.
        """
        self._writable()
        self.flush()
        with self._lock:
            self._recent.clear()  # every entry is stored after the flush; it refills as answers are used
        if provider is None:
            return self._delete("DELETE FROM cache")
        return self._delete("DELETE FROM cache WHERE provider = ?", (provider,))

    def clear_attempts(self) -> int:
        """Forget the whole history; returns how many rows.

        :raises PatCodeError: when the database is read-only or the deletion fails; nothing is forgotten then.
        """
        self._writable()
        self.flush()
        return self._delete("DELETE FROM attempts")
