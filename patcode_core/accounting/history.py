"""Reading the usage history: per-provider figures over a period, as text, JSON or a chart."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from patcode_core.accounting.store_base import QueuedStore
from patcode_core.i18n import t
from patcode_core.routing.durations import parse_duration

_UNITS = {"d": 86400.0, "w": 7 * 86400.0}


def parse_since(text: str, now: float | None = None) -> float:
    """``1h``, ``30m``, ``7d``, ``2w`` ago, or a date ``2026-11-01`` (local midnight), as a timestamp.

    :raises ValueError: for anything else, and for a moment no calendar holds
        (``99999999999999999999d``, a year out of range); never another error.
    """
    now = time.time() if now is None else now
    value = text.strip()
    count, unit = value[:-1], value[-1:]
    # all digits is never a duration here, only maybe a date (``20261101``)
    seconds = None if value.replace(".", "", 1).isdigit() else parse_duration(value, cap=None)
    try:
        if unit in _UNITS and count.isascii() and count.replace(".", "", 1).isdigit():
            moment = now - float(count) * _UNITS[unit]
        elif seconds is not None:
            moment = now - seconds
        else:
            moment = datetime.fromisoformat(value).timestamp()
        datetime.fromtimestamp(moment)  # ValueError, OverflowError or OSError unless a calendar holds it
    except (ValueError, OverflowError, OSError):
        raise ValueError(text) from None
    return moment


@dataclass(slots=True)
class ProviderUsage:
    """One provider's figures over the period asked."""

    provider: str
    requests: int = 0
    successes: int = 0
    failures: int = 0
    cancelled: int = 0
    #: Of the cancelled: requests that lost a hedged race (``LLM_HEDGE``).
    hedged: int = 0
    skipped: int = 0
    cache_hits: int = 0
    mean_latency: float | None = None
    p50_latency: float | None = None
    p95_latency: float | None = None
    p50_first_token: float | None = None
    #: Tokens of the answers that were counted; ``None`` when answers came but none said how many.
    input_tokens: int | None = 0
    output_tokens: int | None = 0
    #: Answers whose provider did not count their tokens (llama.cpp's server in a stream): not in the totals.
    uncounted_answers: int = 0
    cost: float | None = None
    unpriced_answers: int = 0
    fallbacks_in: int = 0
    fallbacks_out: int = 0
    cost_by_model: dict[str, float | None] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        """Successes per judged request (successes and failures; stopped ones are no verdict), in percent.

        ``None`` when no request was judged: no data, not 0 %.
        """
        judged = self.successes + self.failures
        return 100.0 * self.successes / judged if judged else None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``: an infinite or NaN figure (a price of ``1e309``) is ``None``, as JSON has neither."""
        rate = self.success_rate
        return _finite({**asdict(self), "success_rate": None if rate is None else round(rate, 2)})


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float inside it (dicts, lists) replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """One provider's part of the response cache: live entries, their size, hits so far."""

    provider: str
    entries: int
    size_bytes: int
    hits: int


def cache_summary(store: QueuedStore, now: float | None = None) -> list[CacheUsage]:
    """The providers with live cache entries, with their size and how often the cache answered for them."""
    store.flush()
    rows = store.query(
        "SELECT provider, COUNT(*), SUM(LENGTH(text)) FROM cache WHERE expires > ? GROUP BY provider ORDER BY provider",
        (time.time() if now is None else now,),
    )
    hits = dict(store.query(f"SELECT provider, SUM(n * cached) FROM ({store.rows_sql}) AS every_row GROUP BY provider"))
    return [CacheUsage(provider, entries, size or 0, hits.get(provider) or 0) for provider, entries, size in rows]


def weighted_count(condition: str) -> str:
    """``SUM`` of the weights ``n`` of the rows meeting ``condition``, in SQL both SQLite and PostgreSQL run."""
    return f"SUM(CASE WHEN {condition} THEN n ELSE 0 END)"


def interpolated_percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (0..1, in hundredths) of ``values``, interpolated; ``None`` when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def summarize(store: QueuedStore, since: float | None = None, provider: str | None = None) -> list[ProviderUsage]:
    """Every provider's figures since ``since`` (all history when ``None``), optionally one provider only.

    Counts, tokens, cost and fallbacks cover every row (:attr:`QueuedStore.rows_sql`); the latency
    figures come from whole rows, which in a memory store are the most recent
    :data:`~patcode_core.accounting.store.MEMORY_ROWS`. Tokens and cost are those of answers the providers
    gave: a cache hit spent nothing and adds neither. An answer whose tokens were not counted is
    left out of the token totals and counted in ``uncounted_answers``, never as 0.
    """
    store.flush()
    where, parameters = "at >= ?", [since if since is not None else 0.0]
    if provider:
        where += " AND provider = ?"
        parameters.append(provider)
    every_row = f"({store.rows_sql}) AS every_row"
    answered = "outcome = 'success' AND cached = 0"
    rows = store.query(
        f"""SELECT provider,
                {weighted_count("outcome IN ('success', 'failure', 'cancelled') AND cached = 0")},
                {weighted_count(answered)}, {weighted_count("outcome = 'failure'")},
                {weighted_count("outcome = 'cancelled'")}, {weighted_count("outcome = 'skipped'")}, SUM(n * cached),
                SUM(CASE WHEN {answered} THEN input_tokens END),
                SUM(CASE WHEN {answered} THEN output_tokens END),
                SUM(CASE WHEN {answered} THEN uncounted ELSE 0 END),
                SUM(CASE WHEN {answered} THEN cost END),
                SUM(CASE WHEN {answered} THEN unpriced ELSE 0 END),
                {weighted_count("outcome = 'success' AND fallback_from IS NOT NULL")},
                {weighted_count("outcome = 'cancelled' AND error_kind = 'hedged'")}
            FROM {every_row} WHERE {where} GROUP BY provider ORDER BY provider""",
        parameters,
    )
    names = ("requests", "successes", "failures", "cancelled", "skipped", "cache_hits")
    figures = {}
    for row in rows:
        uncounted = int(row[9] or 0)
        figures[row[0]] = ProviderUsage(
            row[0],
            **{name: int(value or 0) for name, value in zip(names, row[1:7], strict=True)},
            # SUM of nothing is NULL: 0 when no answer lacked counts (nothing spent), unknown when some did.
            input_tokens=_known_total(row[7], uncounted),
            output_tokens=_known_total(row[8], uncounted),
            uncounted_answers=uncounted,
            cost=row[10] if row[10] is not None or not row[11] else None,
            unpriced_answers=int(row[11] or 0),
            fallbacks_in=int(row[12] or 0),
            hedged=int(row[13] or 0),
        )
    for usage in figures.values():
        if usage.cost is None and not usage.unpriced_answers:
            usage.cost = 0.0  # nothing answered, nothing spent
    for name, count in store.query(
        f"SELECT fallback_from, SUM(n) FROM {every_row} WHERE {where.replace('provider', 'fallback_from')} "
        "AND outcome = 'success' AND fallback_from IS NOT NULL GROUP BY fallback_from",
        parameters,
    ):
        figures.setdefault(name, ProviderUsage(name)).fallbacks_out = int(count)
    timings: dict[str, tuple[list[float], list[float]]] = {}
    for name, latency, ttft in store.query(
        f"SELECT provider, latency, ttft FROM attempts WHERE {where} AND {answered}", parameters
    ):
        latencies, firsts = timings.setdefault(name, ([], []))
        if latency is not None:
            latencies.append(latency)
        if ttft is not None:
            firsts.append(ttft)
    for name, (latencies, firsts) in timings.items():
        usage = figures[name]
        usage.mean_latency = statistics.fmean(latencies) if latencies else None
        usage.p50_latency = interpolated_percentile(latencies, 0.50)
        usage.p95_latency = interpolated_percentile(latencies, 0.95)
        usage.p50_first_token = interpolated_percentile(firsts, 0.50)
    for name, model, cost, unpriced in store.query(
        f"SELECT provider, model, SUM(cost), SUM(unpriced) FROM {every_row} WHERE {where} AND {answered} "
        "GROUP BY provider, model",
        parameters,
    ):
        # One answer of unknown price makes the model's total unknown, as it does the provider's.
        figures[name].cost_by_model[model] = None if unpriced else cost
    return list(figures.values())


def _known_total(total: int | None, uncounted: int) -> int | None:
    """A token total: the sum of the counted answers, 0 for none, ``None`` when every answer lacked counts."""
    if total is not None:
        return int(total)
    return None if uncounted else 0


def plot(store: QueuedStore, path: Path, since: float | None = None, provider: str | None = None) -> Path:
    """Write a PNG: latency p50/p95 and requests per provider, by hour. Needs matplotlib (``patcode-core[plot]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store.flush()
    where, parameters = "at >= ? AND cached = 0 AND outcome IN ('success', 'failure', 'cancelled')", [since or 0.0]
    if provider:
        where += " AND provider = ?"
        parameters.append(provider)
    buckets: dict[str, dict[float, list[float]]] = {}
    counts: dict[str, dict[float, int]] = {}
    for name, at, latency, outcome in store.query(f"SELECT provider, at, latency, outcome FROM attempts WHERE {where}", parameters):
        hour = at - at % 3600
        counts.setdefault(name, {}).setdefault(hour, 0)
        counts[name][hour] += 1
        if outcome == "success" and latency is not None:
            buckets.setdefault(name, {}).setdefault(hour, []).append(latency)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name, by_hour in sorted(buckets.items()):
        hours = sorted(by_hour)
        when = [datetime.fromtimestamp(hour) for hour in hours]
        top.plot(when, [interpolated_percentile(by_hour[h], 0.5) for h in hours], marker="o", label=f"{name} p50")
        top.plot(when, [interpolated_percentile(by_hour[h], 0.95) for h in hours], linestyle="--", label=f"{name} p95")
    top.set_ylabel(t("plot.latency"))
    top.legend(loc="upper left")
    width = 1 / 24 / max(1, len(counts))
    for index, (name, by_hour) in enumerate(sorted(counts.items())):
        hours = sorted(by_hour)
        bottom.bar([datetime.fromtimestamp(hour + index * width * 86400) for hour in hours], [by_hour[h] for h in hours],
                   width=width, label=name)
    bottom.set_ylabel(t("plot.requests"))
    bottom.legend(loc="upper left")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path
