"""Per-provider counters, exact under concurrent calls (from tasks or threads)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """One provider's figures.

    ``requests`` counts the requests actually sent (each retry is one more):
    ``successes + failures + cancelled``. ``cancelled`` are the ones the
    caller stopped (Ctrl-C, a stream closed early): no verdict on the
    provider. ``retries`` how many were second or later tries; ``skipped``
    the times the provider was passed over without sending anything (no key,
    circuit open, rate limit).
    """

    requests: int = 0
    successes: int = 0
    failures: int = 0
    success_time: float = 0.0
    retries: int = 0
    skipped: int = 0
    cancelled: int = 0
    cache_hits: int = 0

    @property
    def success_rate(self) -> float:
        """Successes per judged request (successes and failures; cancelled ones are no verdict), in percent.

        0 when no request was judged; the CLI shows that case as "—" (see :class:`~patcode_core.accounting.history.ProviderUsage`).
        """
        judged = self.successes + self.failures
        return 100.0 * self.successes / judged if judged else 0.0

    @property
    def mean_time(self) -> float:
        """Mean seconds of a successful answer (0 when none succeeded)."""
        return self.success_time / self.successes if self.successes else 0.0


_REQUESTS, _SUCCESSES, _FAILURES, _TIME, _RETRIES, _SKIPPED, _CANCELLED, _CACHE_HITS = range(8)


class StatsRecorder:
    """Counts each attempt the manager makes on a provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, list[float]] = {}

    def _counter(self, provider: str) -> list[float]:
        return self._counters.setdefault(provider, [0, 0, 0, 0.0, 0, 0, 0, 0])

    def record(self, provider: str, ok: bool | None, seconds: float, *, retry: bool = False) -> None:
        """Count one request sent to ``provider``: success with its time, failure, or ``None`` for cancelled."""
        with self._lock:
            counter = self._counter(provider)
            counter[_REQUESTS] += 1
            if retry:
                counter[_RETRIES] += 1
            if ok is None:
                counter[_CANCELLED] += 1
            elif ok:
                counter[_SUCCESSES] += 1
                counter[_TIME] += seconds
            else:
                counter[_FAILURES] += 1

    def record_skip(self, provider: str) -> None:
        """Count one time ``provider`` was passed over without a request."""
        with self._lock:
            self._counter(provider)[_SKIPPED] += 1

    def record_cache_hit(self, provider: str) -> None:
        """Count one answer served from the cache instead of ``provider`` (no request)."""
        with self._lock:
            self._counter(provider)[_CACHE_HITS] += 1

    def snapshot(self) -> dict[str, ProviderStats]:
        """A consistent copy of every provider's figures."""
        with self._lock:
            return {
                name: ProviderStats(
                    int(c[_REQUESTS]),
                    int(c[_SUCCESSES]),
                    int(c[_FAILURES]),
                    float(c[_TIME]),
                    int(c[_RETRIES]),
                    int(c[_SKIPPED]),
                    int(c[_CANCELLED]),
                    int(c[_CACHE_HITS]),
                )
                for name, c in self._counters.items()
            }

    def reset(self) -> None:
        """Forget every figure."""
        with self._lock:
            self._counters.clear()
