"""``GET /metrics``: PatCode's figures in Prometheus' text format, kept by the official client library.

Every history row the manager writes (:attr:`UsageLog.observers`) feeds the
counters and histograms, so the figures are the same as ``llm stats``': a
request is one attempt at one provider and model. Circuit states are read
when Prometheus scrapes. Model names come from settings and requests, so the
label sets are capped: past :data:`MAX_SERIES` pairs, new models are counted
as ``other``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from patcode_core.routing.breaker import CircuitState

if TYPE_CHECKING:
    from patcode_core.accounting.store import Attempt
    from patcode_core.manager import LLMManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_SERIES = 200
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class _Circuits(Collector):
    """``patcode_circuit_state``: 0 closed, 1 half-open, 2 open, per provider and model, read at each scrape."""

    def __init__(self, manager: LLMManager) -> None:
        self._manager = manager

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "patcode_circuit_state", "Circuit of each provider and model: 0 closed, 1 half-open, 2 open",
            labels=["provider", "model"],
        )
        for (provider, model), circuit in self._manager.breakers.items():
            family.add_metric([provider, model], _STATE_VALUE.get(circuit.state, 0))
        yield family


class GatewayMetrics:
    """The gateway's metrics, fed by the manager's history rows and by the HTTP layer."""

    def __init__(self, manager: LLMManager) -> None:
        # The client's ``*_created`` series (a start time per labelled counter) double what is scraped and say
        # nothing a restart counter would not; the switch is the library's, for the whole process.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        labels = ["provider", "model"]
        self.attempts = Counter("patcode_requests", "Requests sent to providers (or answered by the cache), by outcome",
                                [*labels, "outcome"], registry=self.registry)
        self.failures = Counter("patcode_failures", "Failed requests by kind of error", [*labels, "kind"], registry=self.registry)
        self.fallbacks = Counter("patcode_fallbacks", "Answers given by a provider after another one failed",
                                 [*labels, "from_provider"], registry=self.registry)
        self.latency = Histogram("patcode_latency_seconds", "Seconds from sending to the whole answer", labels,
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.first_token = Histogram("patcode_first_token_seconds", "Seconds from sending to the first token of a stream",
                                     labels, buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter("patcode_tokens", "Tokens the providers counted", [*labels, "direction"], registry=self.registry)
        self.cost = Counter("patcode_cost_usd", "USD spent, from the published prices", labels, registry=self.registry)
        self.cache_hits = Counter("patcode_cache_hits", "Answers served from the response cache", labels,
                                  registry=self.registry)
        self.http = Counter("patcode_gateway_http_requests", "HTTP requests the gateway answered, by endpoint and status",
                            ["endpoint", "status"], registry=self.registry)
        self.registry.register(_Circuits(manager))
        self._series: set[tuple[str, str]] = set()
        manager.usage.observers.append(self.observe)

    def _labels(self, provider: str, model: str) -> tuple[str, str]:
        pair = (provider, model)
        if pair in self._series:
            return pair
        if len(self._series) >= MAX_SERIES:
            return (provider, "other")
        self._series.add(pair)
        return pair

    def observe(self, row: Attempt) -> None:
        """Count one history row."""
        provider, model = self._labels(row.provider, row.model)
        self.attempts.labels(provider, model, row.outcome).inc()
        if row.outcome == "failure":
            self.failures.labels(provider, model, row.error_kind or "unknown").inc()
        if row.outcome != "success":
            return
        if row.cached:
            self.cache_hits.labels(provider, model).inc()
            return
        if row.fallback_from:
            self.fallbacks.labels(provider, model, row.fallback_from).inc()
        if row.latency is not None:
            self.latency.labels(provider, model).observe(row.latency)
        if row.ttft is not None:
            self.first_token.labels(provider, model).observe(row.ttft)
        if row.input_tokens is not None:
            self.tokens.labels(provider, model, "input").inc(row.input_tokens)
        if row.output_tokens is not None:
            self.tokens.labels(provider, model, "output").inc(row.output_tokens)
        if row.cost is not None:
            self.cost.labels(provider, model).inc(row.cost)

    def render(self) -> bytes:
        """The text Prometheus scrapes."""
        return generate_latest(self.registry)
