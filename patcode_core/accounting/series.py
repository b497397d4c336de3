"""The usage history per provider and model, over time, and its latest rows: what ``patcode serve``'s page shows.

Counts and cost come from :attr:`QueuedStore.rows_sql` (every row, folded
ones of a memory store included); latencies from whole rows. Cost is unknown
(``None``), never 0, as soon as one answer of the group had no price.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from patcode_core.accounting.history import interpolated_percentile, weighted_count
from patcode_core.accounting.store_base import QueuedStore

#: Periods the page offers: name → seconds (``None``: all the history).
PERIODS: dict[str, float | None] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "all": None}
#: Bucket widths to choose from, so a chart has at most :data:`MAX_BUCKETS` points.
_WIDTHS = (60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)
MAX_BUCKETS = 48
_ANSWERED = "outcome = 'success' AND cached = 0"


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """One provider and model's figures over a period."""

    provider: str
    model: str
    requests: int
    successes: int
    failures: int
    cache_hits: int
    p50_latency: float | None
    p95_latency: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """One point of the charts: requests sent, their p50 latency and their cost, from ``start`` for ``width`` seconds."""

    start: float
    width: float
    requests: int
    p50_latency: float | None
    cost: float | None


def since_of(period: str, now: float | None = None) -> float:
    """The timestamp a period name starts at (0 for ``all``; an unknown name is ``24h``)."""
    seconds = PERIODS.get(period, PERIODS["24h"])
    return 0.0 if seconds is None else (time.time() if now is None else now) - seconds


def by_model(store: QueuedStore, since: float) -> list[ModelUsage]:
    """Every provider and model with requests since ``since``, by provider then model."""
    store.flush()
    rows = store.query(
        f"""SELECT provider, model,
                {weighted_count("outcome IN ('success', 'failure', 'cancelled') AND cached = 0")},
                {weighted_count(_ANSWERED)}, {weighted_count("outcome = 'failure'")}, SUM(n * cached),
                SUM(CASE WHEN {_ANSWERED} THEN input_tokens END), SUM(CASE WHEN {_ANSWERED} THEN output_tokens END),
                SUM(CASE WHEN {_ANSWERED} THEN cost END), SUM(CASE WHEN {_ANSWERED} THEN unpriced ELSE 0 END)
            FROM ({store.rows_sql}) AS every_row WHERE at >= ? GROUP BY provider, model ORDER BY provider, model""",
        (since,),
    )
    latencies: dict[tuple[str, str], list[float]] = {}
    for provider, model, latency in store.query(
        f"SELECT provider, model, latency FROM attempts WHERE at >= ? AND {_ANSWERED} AND latency IS NOT NULL", (since,)
    ):
        latencies.setdefault((provider, model), []).append(latency)
    found = []
    for provider, model, requests, successes, failures, hits, tokens_in, tokens_out, cost, unpriced in rows:
        samples = latencies.get((provider, model), [])
        found.append(ModelUsage(
            provider, model, int(requests or 0), int(successes or 0), int(failures or 0), int(hits or 0),
            interpolated_percentile(samples, 0.5), interpolated_percentile(samples, 0.95),
            None if tokens_in is None else int(tokens_in), None if tokens_out is None else int(tokens_out),
            None if unpriced else float(cost or 0.0),
        ))
    return found


def bucket_width(since: float, now: float, oldest: float | None) -> float:
    """The narrowest width that draws the period in at most :data:`MAX_BUCKETS` points."""
    start = max(since, oldest if oldest is not None else now)
    span = max(now - start, 60.0)
    return next((width for width in _WIDTHS if span / width <= MAX_BUCKETS), _WIDTHS[-1])


def over_time(store: QueuedStore, since: float, now: float | None = None) -> list[Bucket]:
    """Requests, p50 latency and cost per time bucket since ``since``, oldest first, empty buckets included."""
    store.flush()
    now = time.time() if now is None else now
    oldest = store.query(f"SELECT MIN(at) FROM ({store.rows_sql}) AS every_row WHERE at >= ?", (since,))[0][0]
    if oldest is None:
        return []
    width = bucket_width(since, now, oldest)
    first = math.floor(oldest / width) * width
    counts: dict[float, list[Any]] = {}
    for at, n, answered, cost, unpriced in store.query(
        f"SELECT at, n, CASE WHEN {_ANSWERED} THEN 1 ELSE 0 END, cost, unpriced FROM ({store.rows_sql}) AS every_row "
        "WHERE at >= ? AND outcome IN ('success', 'failure', 'cancelled') AND cached = 0", (since,)
    ):
        entry = counts.setdefault(math.floor(at / width) * width, [0, 0.0, False])
        entry[0] += n
        if answered:
            entry[1] += cost or 0.0
            entry[2] = entry[2] or bool(unpriced)
    latencies: dict[float, list[float]] = {}
    for at, latency in store.query(
        f"SELECT at, latency FROM attempts WHERE at >= ? AND {_ANSWERED} AND latency IS NOT NULL", (since,)
    ):
        latencies.setdefault(math.floor(at / width) * width, []).append(latency)
    buckets = []
    start = first
    while start <= now:
        requests, cost, unknown = counts.get(start, [0, 0.0, False])
        buckets.append(Bucket(start, width, requests, interpolated_percentile(latencies.get(start, []), 0.5), None if unknown else cost))
        start += width
    return buckets


def recent(store: QueuedStore, limit: int = 30, with_content: bool = False) -> list[dict[str, Any]]:
    """The latest history rows, newest first; prompt and answer only when ``with_content`` (``LLM_LOG_CONTENT=true``)."""
    store.flush()
    columns = "at, provider, model, outcome, error_kind, latency, input_tokens, output_tokens, cost, fallback_from, cached"
    if with_content:
        columns += ", prompt, answer"
    names = [name.strip() for name in columns.split(",")]
    return [dict(zip(names, row, strict=True))
            for row in store.query(f"SELECT {columns} FROM attempts ORDER BY id DESC LIMIT ?", (limit,))]
