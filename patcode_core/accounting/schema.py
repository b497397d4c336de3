"""The usage history's tables, as both stores keep them: one row type, one list of migrations, portable SQL.

:data:`MIGRATIONS` is written in SQLite's words; the PostgreSQL store runs
the same steps through :func:`patcode_core.accounting.store_postgres.postgres_dialect`
(``REAL`` as ``DOUBLE PRECISION``, ``INTEGER`` as ``BIGINT``, an ``INTEGER
PRIMARY KEY`` as an identity column), so the two schemas cannot drift apart.
Every other statement here is valid on both engines, with ``?`` placeholders
(the PostgreSQL store translates them).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields

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


#: The ``attempts`` columns a row fills, in :class:`Attempt`'s order (``id`` is the database's).
COLUMNS = [field.name for field in fields(Attempt)]
#: ``Attempt`` → a flat tuple in :data:`COLUMNS` order, far cheaper than ``dataclasses.astuple``.
AS_ROW = operator.attrgetter(*COLUMNS)
#: Index of ``cached`` in such a tuple (PostgreSQL wants it as a number, not a boolean).
CACHED_INDEX = COLUMNS.index("cached")

INSERT_ATTEMPT = f"INSERT INTO attempts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
CACHE_COLUMNS = ("key", "provider", "model", "created", "expires", "text", "finish_reason", "input_tokens",
                 "output_tokens", "answer_model")
INSERT_TIMING = "INSERT INTO timings (at, provider, model, first_byte, first_token, gap) VALUES (?, ?, ?, ?, ?, ?)"
#: Timings kept per provider and model (older ones are deleted as new ones come): enough for the learned limits' window.
TIMINGS_KEPT = 500
PRUNE_TIMINGS = """DELETE FROM timings WHERE provider = ? AND model = ? AND id <= (
    SELECT id FROM timings WHERE provider = ? AND model = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"""

#: Every history row with its weight ``n``, its ``unpriced`` (cost unknown) count and its ``uncounted``
#: (token counts unknown: NULL, never 0) count, for the figures. ``CASE``, not a boolean used as a
#: number, so that PostgreSQL runs it too.
ROWS_SQL = (
    "SELECT at, provider, model, outcome, error_kind, cached, fallback_from, input_tokens, output_tokens, cost, "
    "1 AS n, CASE WHEN cost IS NULL THEN 1 ELSE 0 END AS unpriced, "
    "CASE WHEN input_tokens IS NULL OR output_tokens IS NULL THEN 1 ELSE 0 END AS uncounted FROM attempts"
)
