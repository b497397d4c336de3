"""The usage store: every attempt, and the response cache, in one SQLite database that outlives the process.

Writes never wait on the disk: :meth:`UsageStore.record` puts a row on a
queue and a writer thread stores them in batches (one transaction each), in
WAL mode so several ``patcode`` processes can write at once. The writer
never dies: a batch that fails (a full disk, a value SQLite refuses) is
counted in :attr:`UsageStore.lost` with the reason in
:attr:`UsageStore.error`, and the next batches are written when they can be.
Text is stored as valid UTF-8 (a lone surrogate becomes U+FFFD). The queue
and its writer are :class:`~patcode_core.accounting.store_base.QueuedStore`'s,
shared with the PostgreSQL store (:mod:`patcode_core.accounting.store_postgres`);
the tables are :mod:`patcode_core.accounting.schema`'s.

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

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from patcode_core.accounting.schema import (
    INSERT_ATTEMPT,
    INSERT_TIMING,
    MIGRATIONS,
    PRUNE_TIMINGS,
    ROWS_SQL,
    SCHEMA_VERSION,
    TIMINGS_KEPT,
    Attempt,
)
from patcode_core.accounting.store_base import BATCH, RECENT, WRITE_INTERVAL, QueuedStore, StoreUnavailable, safe_row
from patcode_core.types import CachedAnswer

# Re-exported: the store's long-standing names (its row, its schema, its limits) stay importable from here.
__all__ = [
    "BATCH", "MEMORY_ROWS", "MIGRATIONS", "RECENT", "SCHEMA_VERSION", "TIMINGS_KEPT", "WRITE_INTERVAL",
    "Attempt", "CachedAnswer", "StoreUnavailable", "UsageStore", "migrate",
]

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
_MEMORY_ROWS_SQL = (
    f"{ROWS_SQL} UNION ALL SELECT at, provider, model, outcome, NULLIF(error_kind, ''), cached, "
    "NULLIF(fallback_from, ''), input_tokens, output_tokens, cost, n, unpriced, uncounted FROM folded"
)

# SQLite's primary result codes meaning "this file cannot be written here" (SQLITE_PERM, _READONLY, _CANTOPEN).
_READ_ONLY_CODES = {3, 8, 14}
_BUSY = 5
_INSERT_CACHE = "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


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


class UsageStore(QueuedStore):
    """The attempts and the cache, in ``path`` (or in memory when ``path`` is ``None``).

    :raises StoreUnavailable: when the file cannot be opened or is not a PatCode database.
    """

    batch_errors = (sqlite3.OperationalError,)

    def __init__(self, path: Path | None) -> None:
        super().__init__()
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
        if self.read_only is None:
            self._start_writer()

    @property
    def persistent(self) -> bool:
        """True for a file (even a read-only one), False in memory."""
        return self.path is not None

    @property
    def location(self) -> str:
        """The file's path, or ``:memory:``."""
        return str(self.path) if self.path is not None else ":memory:"

    # -- writing (the writer thread) ------------------------------------

    def _insert(self, batch: Sequence[tuple[str, Any]]) -> None:
        attempts = [safe_row(row) for kind, row in batch if kind == "attempt"]
        cached = [safe_row(row) for kind, row in batch if kind == "cache"]
        timings = [safe_row(row) for kind, row in batch if kind == "timing"]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if attempts:
                    self._db.executemany(INSERT_ATTEMPT, attempts)
                if cached:
                    self._db.executemany(_INSERT_CACHE, cached)
                if timings:
                    self._db.executemany(INSERT_TIMING, timings)
                    for provider, model in {(row[1], row[2]) for row in timings}:
                        self._db.execute(PRUNE_TIMINGS, (provider, model, provider, model, TIMINGS_KEPT))
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

    def _close_database(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading -------------------------------------------------------

    @property
    def rows_sql(self) -> str:
        """A ``SELECT`` of every history row for the figures (see :attr:`QueuedStore.rows_sql`).

        In a file each row has ``n = 1``; in memory the folded totals of older rows come too
        (``at`` the start of their hour).
        """
        return _MEMORY_ROWS_SQL if self._memory else ROWS_SQL

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read (written rows become visible after :meth:`flush`)."""
        with self._lock:
            return self._db.execute(sql, tuple(parameters)).fetchall()

    def clear_attempts(self) -> int:
        """Forget the whole history (in memory, the folded totals too); returns how many rows.

        :raises PatCodeError: when the database is read-only or the deletion fails; nothing is forgotten then.
        """
        if not self._memory:
            return super().clear_attempts()
        self.flush()
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
