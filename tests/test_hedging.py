"""Hedged streams over real sockets: a late primary gets the next provider started beside it.

The first to produce a first token wins; the loser's request is cancelled
and its connection closed (seen on its server), it is booked as a cancelled
request marked ``hedged``, and no text of it ever reaches the caller.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes.server_process import FakeProviderServer
from helpers import two_server_env

from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult, StreamStarted, TextDelta

PROMPT = "uno dos tres"


def use(monkeypatch: pytest.MonkeyPatch, primary: FakeProviderServer, fallback: FakeProviderServer, hedge: str) -> None:
    env = two_server_env("openai", "ollama", primary.url, fallback.url, LLM_HEDGE=hedge, LLM_REQUEST_DEADLINE="30")
    for name, value in env.items():
        monkeypatch.setenv(name, value)


async def events_of(manager: LLMManager) -> tuple[list[object], float]:
    started = time.monotonic()
    events = [event async for event in manager.stream(PROMPT)]
    return events, time.monotonic() - started


async def client_closed(server: FakeProviderServer, seconds: float = 5.0) -> bool:
    """Whether the server saw its one chat request's client hang up (polled: it notices when it writes)."""
    for _ in range(int(seconds / 0.1)):
        chats = server.requests("chat")
        if chats and chats[0].get("client_closed"):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_late_primary_loses_to_the_hedge_and_its_request_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server, "0.3")
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "first_token_delay": 2.0})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, seconds = await events_of(manager)
        manager.usage.store.flush()
        rows = manager.usage.store.query("SELECT provider, outcome, error_kind FROM attempts ORDER BY id")
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.provider == "ollama" and seconds < 1.5
    assert {event.provider for event in events if isinstance(event, TextDelta | StreamStarted)} == {"ollama"}
    assert result.failures == ()  # the loser is not a failure of the route
    assert sorted(rows) == [("ollama", "success", None), ("openai", "cancelled", "hedged")]
    assert await client_closed(provider_server), "the losing request's connection was not closed"


async def test_a_primary_that_answers_before_the_hedge_time_starts_no_hedge(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server, "1")
    provider_server.fault("chat", {"type": "stream", "mode": "ok"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, _ = await events_of(manager)
    assert events[-1].provider == "openai" and fallback_server.requests("chat") == []


async def test_a_primary_that_wins_the_race_cancels_the_hedge(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server, "0.2")
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "first_token_delay": 0.5})
    fallback_server.fault("chat", {"type": "stream", "mode": "ok", "first_token_delay": 3.0})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, seconds = await events_of(manager)
    assert events[-1].provider == "openai" and seconds < 2
    assert {event.provider for event in events if isinstance(event, TextDelta)} == {"openai"}
    assert await client_closed(fallback_server), "the losing hedge's connection was not closed"


async def test_auto_hedges_at_the_learned_p95_once_there_is_history(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server, "auto")
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        provider_server.fault("chat", *[{"type": "stream", "mode": "ok", "first_token_delay": 0.2}] * 5)
        for _ in range(5):  # no history: a hedge only at half the first-token limit (5 s)
            events, _ = await events_of(manager)
            assert events[-1].provider == "openai"
        assert fallback_server.requests("chat") == []
        hedge_after = manager.learned_limits.limits("openai", "gpt-4o-mini", 30).hedge_after
        assert hedge_after is not None and 0.2 <= hedge_after < 0.5
        provider_server.fault("chat", {"type": "stream", "mode": "ok", "first_token_delay": 2.5})
        events, seconds = await events_of(manager)
    assert events[-1].provider == "ollama" and seconds < 1.5


async def test_hedging_off_never_starts_a_second_provider(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    use(monkeypatch, provider_server, fallback_server, "off")
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "first_token_delay": 1.0})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, seconds = await events_of(manager)
    assert events[-1].provider == "openai" and seconds >= 1.0 and fallback_server.requests("chat") == []
