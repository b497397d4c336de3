"""Shared by the benchmarks: the loopback provider server and percentile helpers."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.server_process import FakeProviderServer, closed_port_url  # noqa: E402

__all__ = ["FakeProviderServer", "closed_port_url", "percentile", "summary"]


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` percentile (0..1) of ``samples``, nearest-rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def summary(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    return statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
