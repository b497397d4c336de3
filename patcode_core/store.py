"""The usage store: every attempt, and the response cache, in one SQLite database that outlives the process.

Writes never wait on the disk: :meth:`UsageStore.record` puts a row on a
queue and a writer thread stores them in batches, in WAL mode so several
``patcode`` processes can write at once. A database that cannot be opened
(unreadable, corrupt, a newer schema) turns history off with one warning;
PatCode keeps answering. ``LLM_STATS_STORE=off`` keeps everything in memory.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS`
holds one step per version and an older database upgrades in place.
"""

from __future__ import annotations

import operator
import queue
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from patcode_core.types import CachedAnswer

#: One list of statements per schema version; never edit a released step, add one.
MIGRATIONS: list[list[str]] = [
    # 1: attempts as the first release stored them.
    [
        """CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error_kind TEXT,
            latency REAL,
            input_tokens INTEGER,
            output_tokens INTEGER
        )""",
        "CREATE INDEX attempts_at ON attempts (at)",
    ],
    # 2: time to first token, cost, fallback, cache, conversation, optional content; the response cache.
    [
        "ALTER TABLE attempts ADD COLUMN ttft REAL",
        "ALTER TABLE attempts ADD COLUMN cost REAL",
        "ALTER TABLE attempts ADD COLUMN fallback_from TEXT",
        "ALTER TABLE attempts ADD COLUMN cached INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN conversation TEXT",
        "ALTER TABLE attempts ADD COLUMN prompt TEXT",
        "ALTER TABLE attempts ADD COLUMN answer TEXT",
        "CREATE INDEX attempts_provider_at ON attempts (provider, at)",
        """CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL,
            text TEXT NOT NULL,
            finish_reason TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            answer_model TEXT
        )""",
        "CREATE INDEX cache_provider ON cache (provider)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
BATCH = 256
#: The writer wakes this often (or when a batch is full, or on flush); waking per row cost
#: the event loop ~0.3 ms a call in GIL hand-overs.
WRITE_INTERVAL = 0.25
#: Cache entries kept in memory until the writer has stored them (and a little after).
RECENT = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """One row of the history: a request sent (or skipped, or served from the cache)."""

    at: float
    provider: str
    model: str
    outcome: str  # success, failure, cancelled, skipped
    error_kind: str | None = None
    latency: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft: float | None = None
    cost: float | None = None
    fallback_from: str | None = None
    cached: bool = False
    conversation: str | None = None
    prompt: str | None = None
    answer: str | None = None


_COLUMNS = [field.name for field in fields(Attempt)]
_AS_ROW = operator.attrgetter(*_COLUMNS)  # a flat tuple, far cheaper than dataclasses.astuple
_INSERT = f"INSERT INTO attempts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class StoreUnavailable(Exception):
    """The database cannot be used; the message says why (history is then off)."""


def _write_loop(ref: weakref.ReferenceType[UsageStore]) -> None:
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
        store._drain()
        if store._stopping:
            return
        del store


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version it started from."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(f"schema version {version} is newer than this PatCode ({SCHEMA_VERSION})")
    for number in range(version, SCHEMA_VERSION):
        with connection:
            for statement in MIGRATIONS[number]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number + 1}")
    return version


def _connect(path: Path | None) -> sqlite3.Connection:
    target = ":memory:" if path is None else str(path)
    connection = sqlite3.connect(target, timeout=30, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    if path is not None:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    return connection


class UsageStore:
    """The attempts and the cache, in ``path`` (or in memory when ``path`` is ``None``).

    :raises StoreUnavailable: when the file cannot be opened or is not a PatCode database.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _connect(path)
            migrate(self._db)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
        self._lock = threading.Lock()  # one statement at a time on the shared connection
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # The thread holds the store only weakly: a store dropped without close() lets its thread end.
        self._writer = threading.Thread(target=_write_loop, args=(weakref.ref(self),), name="patcode-store", daemon=True)
        self._error: str | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._recent: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()
        self._writer.start()

    # -- writing (off the caller's path) ------------------------------

    def record(self, attempt: Attempt) -> None:
        """Queue one attempt; returns at once."""
        self._enqueue(("attempt", _AS_ROW(attempt)))

    def put_cached(self, key: str, provider: str, model: str, ttl: float, answer: CachedAnswer) -> None:
        """Queue one answer for the cache."""
        now = time.time()
        row = (key, provider, model, now, now + ttl, answer.text, answer.finish_reason, answer.input_tokens,
               answer.output_tokens, answer.model)
        with self._lock:  # visible at once, before the writer gets to it
            self._recent[key] = (now + ttl, answer)
            self._recent.move_to_end(key)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        self._enqueue(("cache", row))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        if self._error is not None:
            return
        with self._idle:
            self._pending += 1
            full = self._pending >= BATCH
        self._queue.put(item)
        if full:
            self._wake.set()

    def _drain(self) -> None:
        """Write every queued row, in batches."""
        batch: list[tuple[str, Any]] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
            if len(batch) >= BATCH:
                self._write(batch)
                batch = []
        if batch:
            self._write(batch)

    def _write(self, batch: Sequence[tuple[str, Any]]) -> None:
        attempts = [row for kind, row in batch if kind == "attempt"]
        cached = [row for kind, row in batch if kind == "cache"]
        try:
            with self._lock, self._db:
                if attempts:
                    self._db.executemany(_INSERT, attempts)
                if cached:
                    self._db.executemany("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", cached)
        except sqlite3.Error as exc:
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    @property
    def error(self) -> str | None:
        """Why writing stopped, if it did (history is off from then on)."""
        return self._error

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued row is written."""
        self._wake.set()
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer, close the database."""
        if not self._writer.is_alive():
            return
        self.flush()
        self._stopping = True
        self._wake.set()
        self._writer.join(timeout=10)
        with self._lock:
            self._db.close()

    # -- reading -------------------------------------------------------

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (written rows become visible after :meth:`flush`)."""
        with self._lock:
            return self._db.execute(sql, tuple(parameters)).fetchall()

    def cached(self, key: str, now: float | None = None) -> CachedAnswer | None:
        """The cached answer for ``key`` unless it expired."""
        moment = time.time() if now is None else now
        with self._lock:
            recent = self._recent.get(key)
        if recent is not None and recent[0] > moment:
            return recent[1]
        rows = self.query(
            "SELECT text, finish_reason, input_tokens, output_tokens, answer_model FROM cache WHERE key = ? AND expires > ?",
            (key, moment),
        )
        return CachedAnswer(*rows[0]) if rows else None

    def clear_cache(self, provider: str | None = None) -> int:
        """Forget cached answers (of one provider); returns how many."""
        self.flush()
        with self._lock, self._db:
            self._recent.clear()
            if provider is None:
                return self._db.execute("DELETE FROM cache").rowcount
            return self._db.execute("DELETE FROM cache WHERE provider = ?", (provider,)).rowcount

    def clear_attempts(self) -> int:
        """Forget the whole history; returns how many rows."""
        self.flush()
        with self._lock, self._db:
            return self._db.execute("DELETE FROM attempts").rowcount
