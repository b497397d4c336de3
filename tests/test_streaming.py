"""LLMManager.stream with in-process plugins: the contract for plugin authors and for callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from helpers import FakeProvider, host_with, manager_with

from patcode_core import hookimpl
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager, SyncLLMManager
from patcode_core.types import CompletionRequest, CompletionResult, StreamChunk, StreamStarted, TextDelta


class Streaming(FakeProvider):
    """A fake provider that streams ``pieces`` with ``gap`` seconds between them."""

    def __init__(self, name: str, pieces: list[str], gap: float = 0.0, **options: object) -> None:
        super().__init__(name, **options)  # type: ignore[arg-type]
        self.pieces = pieces
        self.gap = gap
        self.closed = 0

    @hookimpl
    async def provider_stream(self, provider: str, request: CompletionRequest, context: object) -> AsyncIterator[StreamChunk]:
        self.calls.append(request)
        try:
            for piece in self.pieces:
                yield StreamChunk(text=piece)
                await asyncio.sleep(self.gap)
            yield StreamChunk(finish_reason="stop", done=True)
        finally:
            self.closed += 1


class SyncStreaming(FakeProvider):
    @hookimpl
    def provider_stream(self, provider: str, request: CompletionRequest, context: object) -> Iterator[StreamChunk]:
        yield StreamChunk(text="from ")
        yield StreamChunk(text="a thread")
        yield StreamChunk(finish_reason="stop", done=True)


async def test_events_in_order_with_time_to_first_token() -> None:
    alpha = Streaming("alpha", ["Hola", ", ", "mundo"])
    events = [event async for event in manager_with(alpha).stream("hola")]
    assert isinstance(events[0], StreamStarted) and events[0].provider == "alpha"
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hola", ", ", "mundo"]
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.text == "Hola, mundo"
    assert result.time_to_first_token is not None and result.finish_reason == "stop"


async def test_a_plugin_without_streaming_still_streams_its_whole_answer() -> None:
    alpha = FakeProvider("alpha")
    events = [event async for event in manager_with(alpha).stream("hola")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["alpha answers"]
    assert events[-1].text == "alpha answers"


async def test_a_plain_generator_plugin_streams_from_a_thread() -> None:
    events = [event async for event in manager_with(SyncStreaming("alpha")).stream("hola")]
    assert events[-1].text == "from a thread"


def test_the_sync_facade_is_a_plain_iterator() -> None:
    alpha = Streaming("alpha", ["uno ", "dos"])
    with SyncLLMManager(manager_with(alpha)) as manager:
        texts = [e.text for e in manager.stream("hola") if isinstance(e, TextDelta)]
    assert texts == ["uno ", "dos"]


async def test_stopping_early_closes_the_stream_and_frees_its_slot() -> None:
    alpha = Streaming("alpha", ["a", "b", "c", "d"], gap=0.05)
    manager = manager_with(alpha)
    async with manager:
        stream = manager.stream("hola")
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        await stream.aclose()
        context = manager._contexts["alpha"]
        assert alpha.closed == 1 and context.slots.in_flight == 0
        figures = manager.stats()["alpha"]
        assert (figures.requests, figures.failures, figures.cancelled) == (1, 0, 1)


async def test_cancelling_a_stream_is_not_a_provider_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    alpha = Streaming("alpha", ["a", "b", "c"], gap=0.5)
    manager = manager_with(alpha)

    async def consume() -> None:
        async for _ in manager.stream("hola"):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert alpha.closed == 1 and manager.breakers.status("alpha") == []
    figures = manager.stats()["alpha"]
    assert (figures.requests, figures.failures, figures.cancelled) == (1, 0, 1)


async def test_first_token_and_idle_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_STREAM_IDLE_TIMEOUT", "0.1")
    monkeypatch.setenv("LLM_STREAM_RECOVERY", "restart")
    alpha = Streaming("alpha", ["a", "b"], gap=1.0, priority=1)
    beta = Streaming("beta", ["b1", "b2"], priority=2)
    manager = manager_with(alpha, beta)
    events = [event async for event in manager.stream("hola")]
    result = events[-1]
    assert result.provider == "beta" and result.text == "b1b2"
    assert result.failures[0].kind is ErrorKind.TIMEOUT
    assert result.failures[0].message == "el stream se detuvo: 0.1s sin datos (LLM_STREAM_IDLE_TIMEOUT)"


async def test_an_error_before_text_falls_back_without_a_restart_notice() -> None:
    alpha, beta = FakeProvider("alpha", priority=1), Streaming("beta", ["ok"], priority=2)

    def refuse(request: CompletionRequest) -> object:
        raise ProviderError("alpha", ErrorKind.AUTHENTICATION, "clave rechazada", "fix")

    alpha.behaviour = refuse  # type: ignore[assignment]
    events = [event async for event in manager_with(alpha, beta).stream("hola")]
    assert events[-1].provider == "beta" and events[-1].restarts == ()


def test_bad_recovery_setting_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from patcode_core.errors import ConfigError

    monkeypatch.setenv("LLM_STREAM_RECOVERY", "retry")
    with pytest.raises(ConfigError) as caught:
        LLMManager(host=host_with(FakeProvider("alpha")), env_file=None)
    assert "LLM_STREAM_RECOVERY='retry' no es válido: debe ser uno de: 'restart', 'error'" in str(caught.value)


async def test_the_agent_keeps_a_streamed_turn_only_when_it_finished() -> None:
    from patcode_core.agent import PatAgent
    from patcode_core.types import Message

    alpha = Streaming("alpha", ["uno ", "dos"])
    agent = PatAgent(manager_with(alpha))
    events = [event async for event in agent.stream("primera")]
    assert events[-1].text == "uno dos"
    assert agent.history == [Message("user", "primera"), Message("assistant", "uno dos")]
    stream = agent.stream("segunda")
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    assert len(agent.history) == 2  # the stopped turn is not remembered
    await agent.llm_manager.aclose()


async def test_a_thread_generator_abandoned_mid_read_does_not_break_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as clock

    class SlowThread(FakeProvider):
        @hookimpl
        def provider_stream(self, provider: str, request: CompletionRequest, context: object) -> Iterator[StreamChunk]:
            yield StreamChunk(text="primero ")
            clock.sleep(0.5)
            yield StreamChunk(text="tarde")
            yield StreamChunk(finish_reason="stop", done=True)

    monkeypatch.setenv("LLM_STREAM_IDLE_TIMEOUT", "0.1")
    beta = Streaming("beta", ["b"], priority=2)
    events = [event async for event in manager_with(SlowThread("alpha", priority=1), beta).stream("hola")]
    assert events[-1].provider == "beta" and events[-1].restarts[0].discarded == "primero "
