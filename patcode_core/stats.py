"""Per-provider counters, exact under concurrent calls (from tasks or threads)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """One provider's figures: attempts made, how they ended, time spent answering."""

    requests: int = 0
    successes: int = 0
    failures: int = 0
    success_time: float = 0.0

    @property
    def success_rate(self) -> float:
        """Successes per request, in percent (0 when nothing was asked)."""
        return 100.0 * self.successes / self.requests if self.requests else 0.0

    @property
    def mean_time(self) -> float:
        """Mean seconds of a successful answer (0 when none succeeded)."""
        return self.success_time / self.successes if self.successes else 0.0


class StatsRecorder:
    """Counts each attempt the manager makes on a provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, list[float]] = {}

    def record(self, provider: str, ok: bool, seconds: float) -> None:
        """Count one attempt on ``provider``: success with its time, or failure."""
        with self._lock:
            counter = self._counters.setdefault(provider, [0, 0, 0, 0.0])
            counter[0] += 1
            if ok:
                counter[1] += 1
                counter[3] += seconds
            else:
                counter[2] += 1

    def snapshot(self) -> dict[str, ProviderStats]:
        """A consistent copy of every provider's figures."""
        with self._lock:
            return {
                name: ProviderStats(int(c[0]), int(c[1]), int(c[2]), float(c[3]))
                for name, c in self._counters.items()
            }

    def reset(self) -> None:
        """Forget every figure."""
        with self._lock:
            self._counters.clear()
