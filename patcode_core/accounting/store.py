"""The usage store: every attempt, and the response cache, in one SQLite database that outlives the process.

Writes never wait on the disk: :meth:`UsageStore.record` puts a row on a
queue and a writer thread stores them in batches (one transaction each), in
WAL mode so several ``patcode`` processes can write at once. The writer
never dies: a batch that fails (a full disk, a value SQLite refuses) is
counted in :attr:`UsageStore.lost` with the reason in
:attr:`UsageStore.error`, and the next batches are written when they can be.
Text is stored as valid UTF-8 (a lone surrogate becomes U+FFFD).

A database that cannot be opened (unreadable, corrupt, a newer schema)
raises :class:`StoreUnavailable`; the caller turns history off with one
warning. One that can be read but not written (a read-only
``PATCODE_HOME``) is opened read-only: its figures are shown, new rows are
counted as lost, and clearing it raises a :class:`~patcode_core.errors.PatCodeError`.

``LLM_STATS_STORE=off`` keeps everything in memory, bounded: the most recent
:data:`MEMORY_ROWS` rows stay whole and older ones are folded into
per-(hour, provider, model, outcome, error kind, cache, fallback) totals, so
counts, tokens, cost and fallbacks stay exact while latency figures come from
the recent rows.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS`
holds one step per version and an older database upgrades in place, in one
``BEGIN IMMEDIATE`` transaction so that processes starting together do not
race.
"""

from __future__ import annotations

import dataclasses
import operator
import os
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

from patcode_core.safe_text import without_surrogates
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
    # 3: each streamed answer's timings, from which the time limits are learned (patcode_core.routing.learned_limits).
    [
        """CREATE TABLE timings (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            first_byte REAL NOT NULL,
            first_token REAL NOT NULL,
            gap REAL NOT NULL
        )""",
        "CREATE INDEX timings_provider_model ON timings (provider, model, id)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
BATCH = 256
#: The writer wakes this often (or when a batch is full, or on flush); waking per row cost
#: the event loop ~0.3 ms a call in GIL hand-overs.
WRITE_INTERVAL = 0.25
#: Cache entries kept in memory until the writer has stored them (and a little after).
RECENT = 1024
#: With ``LLM_STATS_STORE=off``: whole rows kept in memory; older ones are folded into totals.
MEMORY_ROWS = 10_000
#: Folding stops at this share of :data:`MEMORY_ROWS`, so it runs once per ~1,000 rows, not per batch.
_FOLD_TO = 0.9

#: Totals of folded rows (memory store only). NULL error kinds and fallbacks are stored as '' so that
#: the key is unique; :data:`_MEMORY_ROWS_SQL` turns them back.
_FOLDED_TABLE = """CREATE TABLE folded (
    at REAL NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_kind TEXT NOT NULL,
    cached INTEGER NOT NULL,
    fallback_from TEXT NOT NULL,
    n INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost REAL,
    unpriced INTEGER NOT NULL,
    uncounted INTEGER NOT NULL,
    PRIMARY KEY (at, provider, model, outcome, error_kind, cached, fallback_from)
) WITHOUT ROWID"""
_FOLD = """INSERT INTO folded
    SELECT (CAST(at AS INTEGER) / 3600) * 3600, provider, model, outcome, IFNULL(error_kind, ''), cached,
           IFNULL(fallback_from, ''), COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost), SUM(cost IS NULL),
           SUM(input_tokens IS NULL OR output_tokens IS NULL)
    FROM attempts WHERE id <= ?
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT DO UPDATE SET
        n = n + excluded.n,
        input_tokens = CASE WHEN input_tokens IS NULL THEN excluded.input_tokens
                            WHEN excluded.input_tokens IS NULL THEN input_tokens
                            ELSE input_tokens + excluded.input_tokens END,
        output_tokens = CASE WHEN output_tokens IS NULL THEN excluded.output_tokens
                             WHEN excluded.output_tokens IS NULL THEN output_tokens
                             ELSE output_tokens + excluded.output_tokens END,
        cost = CASE WHEN cost IS NULL THEN excluded.cost WHEN excluded.cost IS NULL THEN cost
                    ELSE cost + excluded.cost END,
        unpriced = unpriced + excluded.unpriced,
        uncounted = uncounted + excluded.uncounted"""
#: Every history row with its weight ``n``, its ``unpriced`` (cost unknown) count and its ``uncounted``
#: (token counts unknown: NULL, never 0) count, for the figures.
_ROWS_SQL = (
    "SELECT at, provider, model, outcome, error_kind, cached, fallback_from, input_tokens, output_tokens, cost, "
    "1 AS n, cost IS NULL AS unpriced, (input_tokens IS NULL OR output_tokens IS NULL) AS uncounted FROM attempts"
)
_MEMORY_ROWS_SQL = (
    f"{_ROWS_SQL} UNION ALL SELECT at, provider, model, outcome, NULLIF(error_kind, ''), cached, "
    "NULLIF(fallback_from, ''), input_tokens, output_tokens, cost, n, unpriced, uncounted FROM folded"
)

# SQLite's primary result codes meaning "this file cannot be written here" (SQLITE_PERM, _READONLY, _CANTOPEN).
_READ_ONLY_CODES = {3, 8, 14}
_BUSY = 5


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
_INSERT_CACHE = "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_TIMING = "INSERT INTO timings (at, provider, model, first_byte, first_token, gap) VALUES (?, ?, ?, ?, ?, ?)"
#: Timings kept per provider and model (older ones are deleted as new ones come): enough for the learned limits' window.
TIMINGS_KEPT = 500
_PRUNE_TIMINGS = """DELETE FROM timings WHERE provider = ? AND model = ? AND id <= (
    SELECT id FROM timings WHERE provider = ? AND model = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"""


class StoreUnavailable(Exception):
    """The database cannot be used; the message says why (history is then off)."""


def _safe_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row, with its text made storable (the common all-ASCII row is returned as it is)."""
    if all(type(value) is not str or value.isascii() for value in row):
        return row
    return tuple(without_surrogates(value) if type(value) is str else value for value in row)


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
        try:
            store._drain()
        except Exception as exc:  # the writer must outlive any one failure; it is recorded
            store._failed(0, exc)
        if store._stopping:
            return
        del store


def _version(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version it started from.

    Every step runs in one ``BEGIN IMMEDIATE`` transaction that reads the
    version again inside it: of several processes opening a new database at
    once, one migrates and the others wait for it, then find nothing to do.

    :raises StoreUnavailable: when the schema is newer than this PatCode.
    """
    version = _version(connection)
    if version == SCHEMA_VERSION:
        return version
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(f"schema version {version} is newer than this PatCode ({SCHEMA_VERSION})")
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _version(connection)
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"schema version {version} is newer than this PatCode ({SCHEMA_VERSION})")
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return version


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(target, timeout=30, check_same_thread=False, isolation_level=None, uri=uri)
    connection.execute("PRAGMA busy_timeout = 30000")
    return connection


def _read_only_error(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _READ_ONLY_CODES


def _open_memory() -> sqlite3.Connection:
    connection = _connect(":memory:")
    migrate(connection)
    connection.execute(_FOLDED_TABLE)
    return connection


def _open_file(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """The database at ``path``, read-write when possible, else read-only; with the reason it is read-only.

    :raises StoreUnavailable: when it can be neither written nor read.
    """
    from patcode_core.private_files import private_dir, private_file, tighten

    folder = path.parent
    try:
        private_dir(folder)
    except OSError as exc:
        raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
    exists = path.exists()
    reason = None
    if os.access(folder, os.W_OK) and (not exists or os.access(path, os.W_OK)):
        try:
            private_file(path)  # 0600 before SQLite opens it; SQLite gives -wal and -shm the same mode
            connection = _open_writable(path)
        except sqlite3.Error as exc:
            if not (exists and _read_only_error(exc)):
                raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
            reason = str(exc)
        except OSError as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
        else:
            for sidecar in ("-wal", "-shm"):
                tighten(path.with_name(path.name + sidecar))
            return connection, None
    elif not exists:
        raise StoreUnavailable(f"{folder}: {os.strerror(13)}")
    return _open_read_only(path), reason or os.strerror(13)


def _open_writable(path: Path) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with the schema up to date.

    Two processes turning a new file to WAL at the same moment can deadlock
    on its locks; SQLite then fails one at once (no busy wait), so that one
    tries again shortly.
    """
    for wait in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
        try:
            return _open_wal(path)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != _BUSY:
                raise
            time.sleep(wait)
    return _open_wal(path)


def _open_wal(path: Path) -> sqlite3.Connection:
    connection = _connect(str(path))
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` with ``mode=ro``; when not even the ``-shm`` can be made, as immutable (if no WAL holds rows).

    :raises StoreUnavailable: when it cannot be read, or its schema is not this PatCode's.
    """
    base = f"{path.absolute().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    attempts = [base]
    if not wal.exists() or wal.stat().st_size == 0:
        attempts.append(f"{base}&immutable=1")  # nothing in a WAL to miss
    failure: sqlite3.Error | None = None
    for target in attempts:
        connection = None
        try:
            connection = _connect(target, uri=True)
            version = _version(connection)
        except sqlite3.Error as exc:
            if connection is not None:
                connection.close()
            failure = exc
            continue
        if version != SCHEMA_VERSION:
            connection.close()
            raise StoreUnavailable(f"read-only database with schema version {version}, this PatCode needs {SCHEMA_VERSION}")
        return connection
    raise StoreUnavailable(f"{type(failure).__name__}: {failure}")


class UsageStore:
    """The attempts and the cache, in ``path`` (or in memory when ``path`` is ``None``).

    :raises StoreUnavailable: when the file cannot be opened or is not a PatCode database.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        #: Why the database is read-only (``None``: it is writable). Rows recorded meanwhile count as lost.
        self.read_only: str | None = None
        try:
            if path is None:
                self._db = _open_memory()
            else:
                self._db, self.read_only = _open_file(path)
        except (sqlite3.DatabaseError, OSError) as exc:  # OSError: a folder this user may not even look into
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None
        self._memory = path is None
        self._rows = 0  # memory store: whole rows in the attempts table
        self._lock = threading.Lock()  # one statement at a time on the shared connection
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
        if self.read_only is None:
            self._writer.start()

    # -- writing (off the caller's path) ------------------------------

    def record(self, attempt: Attempt) -> None:
        """Queue one attempt; returns at once."""
        self._enqueue(("attempt", _AS_ROW(attempt)))

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

    def timings(self, provider: str, model: str, limit: int) -> list[tuple[float, float, float]]:
        """The last ``limit`` (first_byte, first_token, gap) of ``provider`` and ``model``, oldest first."""
        rows = self.query(
            "SELECT first_byte, first_token, gap FROM timings WHERE provider = ? AND model = ? ORDER BY id DESC LIMIT ?",
            (provider, model, limit),
        )
        return [(float(a), float(b), float(c)) for a, b, c in reversed(rows)]

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
        """Write every queued row, in batches (each one written or counted as lost by :meth:`_write`)."""
        while True:
            batch: list[tuple[str, Any]] = []
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            self._write(batch)

    def _write(self, batch: Sequence[tuple[str, Any]]) -> None:
        """Store one batch in one transaction; on a failure, what can be stored row by row, the rest counted as lost."""
        try:
            try:
                self._insert(batch)
            except sqlite3.OperationalError as exc:  # the file (full, locked, gone): every row would fail alike
                self._failed(len(batch), exc)
            except Exception:  # a row SQLite refuses (a number too large): store the others
                for item in batch:
                    try:
                        self._insert((item,))
                    except Exception as exc:  # counted and reported, never raised in the writer
                        self._failed(1, exc)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _insert(self, batch: Sequence[tuple[str, Any]]) -> None:
        attempts = [_safe_row(row) for kind, row in batch if kind == "attempt"]
        cached = [_safe_row(row) for kind, row in batch if kind == "cache"]
        timings = [_safe_row(row) for kind, row in batch if kind == "timing"]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if attempts:
                    self._db.executemany(_INSERT, attempts)
                if cached:
                    self._db.executemany(_INSERT_CACHE, cached)
                if timings:
                    self._db.executemany(_INSERT_TIMING, timings)
                    for provider, model in {(row[1], row[2]) for row in timings}:
                        self._db.execute(_PRUNE_TIMINGS, (provider, model, provider, model, TIMINGS_KEPT))
                if self._memory and self._rows + len(attempts) > MEMORY_ROWS:
                    self._fold()
                else:
                    self._rows += len(attempts)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if self._memory:
                    self._rows = self._db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
                raise

    def _fold(self) -> None:
        """Memory store: fold the oldest rows into the hourly totals, keeping the newest ``MEMORY_ROWS * 0.9``."""
        keep = int(MEMORY_ROWS * _FOLD_TO)
        [(last,)] = self._db.execute("SELECT id FROM attempts ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,)).fetchall()
        self._db.execute(_FOLD, (last,))
        self._db.execute("DELETE FROM attempts WHERE id <= ?", (last,))
        self._db.execute("DELETE FROM cache WHERE expires <= ?", (time.time(),))
        self._rows = keep

    def _failed(self, rows: int, exc: BaseException) -> None:
        with self._idle:
            self._lost += rows
            self._error = f"{type(exc).__name__}: {exc}"

    @property
    def error(self) -> str | None:
        """Why the last rows that could not be written were lost (``None`` while every row was written)."""
        return self._error

    @property
    def lost(self) -> int:
        """Rows (history and cache) that could not be written so far: a write failure, or a read-only database."""
        return self._lost

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued row is written (or counted as lost)."""
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
        with self._lock:
            self._db.close()

    # -- reading -------------------------------------------------------

    @property
    def rows_sql(self) -> str:
        """A ``SELECT`` of every history row for the figures, with its weight ``n`` and its unknowns.

        Columns: ``at, provider, model, outcome, error_kind, cached, fallback_from, input_tokens,
        output_tokens, cost, n, unpriced, uncounted``. ``unpriced`` counts the rows whose cost is
        unknown, ``uncounted`` those whose token counts are (stored as NULL, never 0). In a file each
        row has ``n = 1``; in memory the folded totals of older rows come too (``at`` the start of
        their hour).
        """
        return _MEMORY_ROWS_SQL if self._memory else _ROWS_SQL

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
        """Forget cached answers (of one provider); returns how many.

        :raises PatCodeError: when the database is read-only or the deletion fails; nothing is forgotten then.
        """
        self._writable()
        self.flush()
        with self._lock:
            self._recent.clear()  # every entry is on disk after the flush; it refills as answers are used
        if provider is None:
            return self._delete("DELETE FROM cache")
        return self._delete("DELETE FROM cache WHERE provider = ?", (provider,))

    def clear_attempts(self) -> int:
        """Forget the whole history; returns how many rows.

        :raises PatCodeError: when the database is read-only or the deletion fails; nothing is forgotten then.
        """
        self._writable()
        self.flush()
        if not self._memory:
            return self._delete("DELETE FROM attempts")
        folded = self.query("SELECT COALESCE(SUM(n), 0) FROM folded")[0][0]
        count = self._delete("DELETE FROM attempts", also="DELETE FROM folded")
        self._rows = 0
        return count + folded

    def _writable(self) -> None:
        if self.read_only is not None:
            from patcode_core.errors import PatCodeError
            from patcode_core.i18n import t

            folder = self.path.parent if self.path is not None else ""
            raise PatCodeError(
                t("store.read_only", path=self.path, reason=self.read_only), t("store.read_only_fix", folder=folder)
            )

    def _delete(self, sql: str, parameters: tuple[Any, ...] = (), also: str | None = None) -> int:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    count = self._db.execute(sql, parameters).rowcount
                    if also:
                        self._db.execute(also)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            from patcode_core.errors import PatCodeError
            from patcode_core.i18n import t

            reason = f"{type(exc).__name__}: {exc}"
            raise PatCodeError(t("store.delete_failed", path=self.path or ":memory:", reason=reason)) from None
        return count
