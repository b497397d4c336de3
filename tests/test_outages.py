"""Outages over time and under load, on real sockets: a flapping primary, and 1,000 calls with mixed faults."""

from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest
from fakes.server_process import FakeProviderServer
from helpers import two_server_env

from patcode_core.connection_slots import MAX_CONNECTIONS
from patcode_core.errors import PatCodeError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.routing.circuit_probes import ProbeSchedule
from patcode_core.types import CompletionResult

COOLDOWN = 0.4


def use_servers(monkeypatch: pytest.MonkeyPatch, primary: str, fallback: str, **extra: str) -> None:
    """``openai`` is the primary (chat-completions style), ``ollama`` the fallback."""
    for name, value in two_server_env("openai", "ollama", primary, fallback, LLM_RETRY_BASE_DELAY="0.02", **extra).items():
        monkeypatch.setenv(name, value)


async def test_flapping_primary(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """503 for a while, then healthy: the fallback serves, probes are rare, traffic comes back quickly."""
    use_servers(
        monkeypatch,
        provider_server.url,
        fallback_server.url,
        LLM_BREAKER_COOLDOWN=str(COOLDOWN),
        LLM_BREAKER_MAX_COOLDOWN=str(COOLDOWN),
    )
    overloaded = {"error": {"message": "The engine is currently overloaded, please try again later.", "type": "server_error", "param": None, "code": None}}
    provider_server.fault("chat", {"type": "http", "status": 503, "body": overloaded, "always": True})
    served: list[tuple[float, str]] = []
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        outage_ends = time.time() + 1.7
        while time.time() < outage_ends:
            result = await manager.complete("hola")
            served.append((time.time(), result.provider))
            await asyncio.sleep(0.02)
        provider_server.clear_faults()
        recovered_at = time.time()
        while time.time() < recovered_at + 1.0:
            result = await manager.complete("hola")
            served.append((time.time(), result.provider))
            await asyncio.sleep(0.02)
        stats = manager.stats()

    during = [provider for at, provider in served if at < recovered_at]
    assert set(during) == {"ollama"} and len(during) > 20
    primary_hits = [r["at"] for r in provider_server.requests("chat")]
    outage_hits = [at for at in primary_hits if at < recovered_at]
    # The first call tries three times and opens the circuit; after that, one try per background check at
    # most: the server's model list answers while its chat fails, so each check lets one request try.
    # Checks are at most a cooldown apart, each wait shortened by up to the schedule's jitter.
    shortest = (1 - ProbeSchedule().jitter) * COOLDOWN
    probes = outage_hits[3:]
    assert len(probes) <= 1.7 / shortest + 1
    assert all(b - a >= shortest - 0.01 for a, b in zip(outage_hits[2:], outage_hits[3:], strict=False))
    back = next(at for at, provider in served if provider == "openai")
    assert back - recovered_at <= COOLDOWN + 0.2
    after = [provider for at, provider in served if at > back]
    assert after and set(after) == {"openai"}
    assert stats["openai"].requests == len(primary_hits)
    assert stats["ollama"].requests == len(fallback_server.requests("chat")) == stats["ollama"].successes
    assert stats["openai"].successes + stats["ollama"].successes == len(served)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS), read without slowing anything down."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


MIXED_FAULTS = [
    {"type": "http", "status": 503, "body": {"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}}, "times": 120},
    {"type": "reset", "times": 80},
    {"type": "malformed", "times": 60},
    {"type": "http", "status": 429, "body": {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}, "headers": {"retry-after-ms": "50"}, "times": 60},
    {"type": "delay", "seconds": 0.2, "times": 40},
    {"type": "hang", "times": 5},
    {"type": "no_choices", "times": 30},
]


async def test_a_thousand_concurrent_calls_with_mixed_faults(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """Two waves of 1,000 calls: every call ends, the counters match what the servers saw, nothing leaks."""
    use_servers(
        monkeypatch,
        provider_server.url,
        fallback_server.url,
        OPENAI_TIMEOUT="3",
        OLLAMA_TIMEOUT="5",
        LLM_REQUEST_DEADLINE="20",
        LLM_BREAKER_COOLDOWN="0.2",
        PATCODE_LOG_LEVEL="error",
    )
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    descriptors_before = open_descriptors()
    resident: list[int] = []
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        for _wave in range(2):
            provider_server.reset()
            fallback_server.reset()
            manager.reset_stats()
            provider_server.fault("chat", *MIXED_FAULTS)
            fallback_server.fault("chat", {"type": "http", "status": 500, "body": {"error": "internal"}, "times": 60})
            started = time.monotonic()
            outcomes = await asyncio.gather(*(manager.complete(f"pregunta {i}") for i in range(1000)), return_exceptions=True)
            elapsed = time.monotonic() - started
            stats = manager.stats()

            answers = [o for o in outcomes if isinstance(o, CompletionResult)]
            errors = [o for o in outcomes if isinstance(o, PatCodeError)]
            strays = [o for o in outcomes if not isinstance(o, (CompletionResult, PatCodeError))]
            assert strays == [] and len(answers) + len(errors) == 1000
            assert all(str(error).strip() for error in errors)
            assert elapsed < 20
            assert stats["openai"].requests == len(provider_server.requests("chat"))
            assert stats["ollama"].requests == len(fallback_server.requests("chat"))
            for figures in stats.values():
                assert figures.successes + figures.failures + figures.cancelled == figures.requests
            assert stats["openai"].successes + stats["ollama"].successes == len(answers)
            assert sum(r.provider == "openai" for r in answers) == stats["openai"].successes
            clients = [client for client in manager._contexts["openai"]._clients if client is not None]
            if manager._contexts["openai"].http_client == "aiohttp":
                connector = clients[0]._transport._session.connector  # type: ignore[attr-defined]
                assert len(clients) == 1 and connector.limit == MAX_CONNECTIONS and len(connector._acquired) <= MAX_CONNECTIONS
            else:
                assert sum(len(client._transport._pool.connections) for client in clients) <= MAX_CONNECTIONS  # type: ignore[attr-defined]
            del outcomes, answers, errors
            gc.collect()
            resident.append(resident_bytes())
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before
    assert open_descriptors() <= descriptors_before
    # The second wave must not need more memory than the first: nothing is kept per call.
    assert resident[1] - resident[0] < 8 * 1024 * 1024, resident
