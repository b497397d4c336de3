"""Time limits learned from each provider's own streams, over real sockets.

The primary (openai style) and the fallback (ollama style) are two loopback
server processes. With no history a silent primary is left after
NO_HISTORY seconds; after a few healthy streams it is left after the learned
limit (the floor, for a server as fast as these); the figures are kept in
the usage store and carry into a new manager.
"""

from __future__ import annotations

import time

import pytest
from fakes.server_process import FakeProviderServer
from helpers import two_server_env

from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.routing.learned_limits import FIRST_TOKEN_FLOOR, GAP_FLOOR, MIN_SAMPLES, NO_HISTORY, LearnedLimits, Timing
from patcode_core.types import CompletionResult

PROMPT = "uno dos tres"


def use(monkeypatch: pytest.MonkeyPatch, primary: FakeProviderServer, fallback: FakeProviderServer, **extra: str) -> None:
    # Hedging off: these tests watch the limits themselves (a hedge would answer before they expire).
    env = two_server_env("openai", "ollama", primary.url, fallback.url, LLM_REQUEST_DEADLINE="60", LLM_HEDGE="off", **extra)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def answer(manager: LLMManager) -> tuple[CompletionResult, float]:
    started = time.monotonic()
    async for event in manager.stream(PROMPT):
        if isinstance(event, CompletionResult):
            return event, time.monotonic() - started
    raise AssertionError("no result")


async def warm_up(manager: LLMManager, primary: FakeProviderServer, streams: int = MIN_SAMPLES) -> None:
    primary.fault("chat", *[{"type": "stream", "mode": "ok", "token_delay": 0.01}] * streams)
    for _ in range(streams):
        result, _ = await answer(manager)
        assert result.provider == "openai"


async def test_a_silent_provider_is_left_after_the_no_history_limit(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server)
    provider_server.fault("chat", {"type": "stream", "mode": "silence"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        result, seconds = await answer(manager)
    assert result.provider == "ollama"
    assert NO_HISTORY - 0.5 < seconds < NO_HISTORY + 3  # not LLM_FIRST_TOKEN_TIMEOUT's 30 s
    assert result.failures[0].message == (
        "sin primer token en 10s (aún sin historial de este provider; techo LLM_FIRST_TOKEN_TIMEOUT)"
    )


async def test_after_a_warm_up_the_learned_limit_leaves_a_silent_or_stalled_provider_sooner(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        await warm_up(manager, provider_server)
        limits = manager.learned_limits.limits("openai", "gpt-4o-mini", 30)
        assert limits.learned and limits.samples == MIN_SAMPLES
        assert (limits.first_token, limits.idle) == (FIRST_TOKEN_FLOOR, GAP_FLOOR)  # a fast server: the floors
        provider_server.fault("chat", {"type": "stream", "mode": "silence"})
        silent, silent_seconds = await answer(manager)
        provider_server.fault("chat", {"type": "stream", "mode": "stall", "after": 2})
        stalled, stalled_seconds = await answer(manager)
    assert silent.provider == "ollama" and FIRST_TOKEN_FLOOR - 0.3 < silent_seconds < FIRST_TOKEN_FLOOR + 2
    assert silent.failures[0].message.startswith("sin primer token en 3s (límite aprendido: 3 × p99 de ")
    assert stalled.provider == "ollama" and stalled_seconds < GAP_FLOOR + 2
    assert stalled.failures[0].message.startswith("el stream se detuvo: 3s sin datos (límite aprendido")


async def test_the_learned_figures_carry_into_the_next_run(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        await warm_up(manager, provider_server)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as later:
        limits = later.learned_limits.limits("openai", "gpt-4o-mini", 30)
    assert limits.learned and limits.samples == MIN_SAMPLES and limits.first_token_p99 is not None
    assert limits.first_token_p99 < 1


async def test_a_ceiling_the_user_set_is_the_no_history_limit_too(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """A provider that takes longer than 10 s to start can still be used, and learned, by setting the ceiling."""
    use(monkeypatch, provider_server, fallback_server, LLM_FIRST_TOKEN_TIMEOUT="25")
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        assert manager.learned_limits.limits("openai", "gpt-4o-mini", 30).first_token == 25


def test_limits_from_figures_floors_ceilings_and_a_cold_start() -> None:
    saved: list[Timing] = []
    slow = [Timing("p", "m", 0.1, 2.0 + i / 10, 1.0) for i in range(10)]
    limits = LearnedLimits(
        lambda provider, model: list(slow) if provider == "p" else [], saved.append, first_token_ceiling=30, idle_ceiling=15,
        cold_start=lambda provider: 20.0 if provider == "cold" else 0.0,
    )
    learned = limits.limits("p", "m", provider_timeout=30)
    assert learned.first_token == pytest.approx(3 * 2.9) and learned.idle == 3.0 and learned.hedge_after == pytest.approx(2.9)
    assert limits.limits("p", "m", provider_timeout=5).first_token == 5  # *_TIMEOUT caps it too
    assert limits.limits("cold", "m", provider_timeout=30).first_token == NO_HISTORY + 20
    limits.record("cold", "m", 0.1, 25.0, 0.1)  # the cold start is noted, not learned
    assert saved == [] and limits.limits("cold", "m", provider_timeout=30).first_token == NO_HISTORY
    limits.record("p", "m", 0.1, 0.2, 0.05)
    assert saved == [Timing("p", "m", 0.1, 0.2, 0.05)]


async def test_llm_stats_shows_the_limits_in_force(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, tmp_path
) -> None:
    import json
    import os
    import subprocess
    import sys

    use(monkeypatch, provider_server, fallback_server)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        await warm_up(manager, provider_server)

    def llm_stats(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "patcode_core", "llm", "stats", *extra],
            env=dict(os.environ), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    text = llm_stats()
    assert "Límites de tiempo en streaming (primer token / pausa):" in text
    assert "  openai · gpt-4o-mini: 3s / 3s (aprendidos de 5 respuestas, primer token p99 " in text
    assert "  ollama · qwen2.5-coder:1.5b: 10s / 10s (aún sin historial; la primera petición, +30s de arranque)" in text
    limits = {row["provider"]: row for row in json.loads(llm_stats("--json"))["stream_limits"]}
    assert limits["openai"]["learned"] is True and limits["openai"]["first_token"] == 3.0
    assert limits["ollama"]["learned"] is False and limits["ollama"]["first_token"] == 10.0
