"""Streaming over real sockets, both API styles: every way a stream can break, and what the caller gets.

The primary streams from one loopback server that injects the fault; the
fallback streams from a second, healthy one. Each case checks the complete
text, who finished it, the requests each server saw, the wall time against
the limits, and the statistics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from fakes.server_process import FakeProviderServer
from helpers import two_server_env

from patcode_core.errors import ErrorKind, StreamInterruptedError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult, StreamRestarted, StreamStarted, TextDelta

PROMPT = "uno dos tres cuatro cinco seis"
FIRST_TOKEN = 1.0
IDLE = 0.5


@dataclass(frozen=True)
class Style:
    primary: str
    fallback: str
    says: str  # how each fake server starts its answer

    def env(self, primary_url: str, fallback_url: str) -> dict[str, str]:
        return two_server_env(
            self.primary,
            self.fallback,
            primary_url,
            fallback_url,
            LLM_RETRY_BASE_DELAY="0.05",
            LLM_FIRST_TOKEN_TIMEOUT=str(FIRST_TOKEN),
            LLM_STREAM_IDLE_TIMEOUT=str(IDLE),
            LLM_REQUEST_DEADLINE="10",
            LLM_HEDGE="off",  # each case watches one provider's stream break; tests/test_hedging.py races them
        )


STYLES = {"api": Style("openai", "ollama", "api says:"), "ollama": Style("ollama", "openai", "ollama says:")}
FALLBACK_TEXT = {"api": f"ollama says: {PROMPT}", "ollama": f"api says: {PROMPT}"}


def primary_text(style_name: str) -> str:
    return f"{STYLES[style_name].says} {PROMPT}"


async def collect(manager: LLMManager, **options: object) -> tuple[list[object], float]:
    started = time.monotonic()
    events = [event async for event in manager.stream(PROMPT, **options)]
    return events, time.monotonic() - started


def use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("style_name", STYLES)
async def test_a_healthy_stream(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    style = STYLES[style_name]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.01})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, _ = await collect(manager)
        stats = manager.stats()
    started, *deltas, result = events
    assert isinstance(started, StreamStarted) and started.provider == style.primary
    assert all(isinstance(delta, TextDelta) for delta in deltas) and len(deltas) == 8
    assert isinstance(result, CompletionResult) and result.text == primary_text(style_name)
    assert "".join(delta.text for delta in deltas) == result.text
    assert result.finish_reason == "stop" and result.usage.output_tokens == 8 and result.usage.input_tokens
    assert result.time_to_first_token is not None and 0 < result.time_to_first_token <= result.latency
    assert provider_server.requests("chat")[0]["body"]["stream"] is True
    assert (stats[style.primary].requests, stats[style.primary].successes) == (1, 1)


@dataclass(frozen=True)
class Break:
    fault: dict[str, object]
    reason_kind: ErrorKind
    within: float  # seconds the whole call may take


BREAKS = {
    "cut_after_3_tokens": Break({"type": "stream", "mode": "cut", "after": 3}, ErrorKind.CONNECTION, 2.0),
    "stall_after_3_tokens": Break({"type": "stream", "mode": "stall", "after": 3}, ErrorKind.TIMEOUT, IDLE + 1.5),
    "no_end_marker": Break({"type": "stream", "mode": "no_done", "after": 3}, ErrorKind.CONNECTION, 2.0),
    "unreadable_chunks": Break({"type": "stream", "mode": "malformed_chunks", "after": 3}, ErrorKind.MALFORMED_RESPONSE, 2.0),
    "error_inside_the_stream": Break({"type": "stream", "mode": "error", "after": 3}, ErrorKind.SERVER_ERROR, 2.0),
}


@pytest.mark.parametrize("break_name", BREAKS)
@pytest.mark.parametrize("style_name", STYLES)
async def test_a_broken_stream_restarts_on_the_next_provider(
    monkeypatch: pytest.MonkeyPatch,
    provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer,
    style_name: str,
    break_name: str,
) -> None:
    style, broken = STYLES[style_name], BREAKS[break_name]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", broken.fault)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, elapsed = await collect(manager)
        stats = manager.stats()
    restart = next(event for event in events if isinstance(event, StreamRestarted))
    before = events[: events.index(restart)]
    after = events[events.index(restart) + 1 :]
    shown_before = "".join(e.text for e in before if isinstance(e, TextDelta))
    assert shown_before and restart.discarded == shown_before
    assert primary_text(style_name).startswith(shown_before) and shown_before != primary_text(style_name)
    assert (restart.from_provider, restart.to_provider) == (style.primary, style.fallback)
    result = after[-1]
    assert isinstance(result, CompletionResult) and result.provider == style.fallback
    assert result.text == FALLBACK_TEXT[style_name] == "".join(e.text for e in after if isinstance(e, TextDelta))
    assert result.restarts == (restart,) and result.failures[-1].kind is broken.reason_kind
    assert elapsed < broken.within
    assert len(provider_server.requests("chat")) == 1 and len(fallback_server.requests("chat")) == 1
    assert (stats[style.primary].requests, stats[style.primary].failures) == (1, 1)
    assert (stats[style.fallback].requests, stats[style.fallback].successes) == (1, 1)


@pytest.mark.parametrize("style_name", STYLES)
async def test_recovery_error_keeps_the_partial_text(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    style = STYLES[style_name]
    use(monkeypatch, {**style.env(provider_server.url, fallback_server.url), "LLM_STREAM_RECOVERY": "error"})
    provider_server.fault("chat", {"type": "stream", "mode": "cut", "after": 3})
    shown: list[str] = []
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        with pytest.raises(StreamInterruptedError) as caught:
            async for event in manager.stream(PROMPT):
                if isinstance(event, TextDelta):
                    shown.append(event.text)
    error = caught.value
    assert error.partial_text == "".join(shown) and error.partial_text
    assert error.provider == style.primary and fallback_server.requests("chat") == []
    assert str(error).startswith(f"La respuesta de '{style.primary}' se cortó tras {len(error.partial_text)} caracteres: ")
    assert "LLM_STREAM_RECOVERY=error" in error.suggestion


@pytest.mark.parametrize("style_name", STYLES)
async def test_headers_then_silence_falls_back_within_the_first_token_limit(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    style = STYLES[style_name]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", {"type": "stream", "mode": "silence"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, elapsed = await collect(manager)
    assert not any(isinstance(event, StreamRestarted) for event in events)  # nothing was shown: a plain fallback
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.provider == style.fallback
    assert result.failures[0].kind is ErrorKind.TIMEOUT
    assert result.failures[0].message == f"sin primer token en {FIRST_TOKEN:g}s (LLM_FIRST_TOKEN_TIMEOUT)"
    assert FIRST_TOKEN <= elapsed < FIRST_TOKEN + 1.0
    assert len(provider_server.requests("chat")) == 1  # a silent provider is not retried


@pytest.mark.parametrize("style_name", STYLES)
async def test_a_single_unreadable_chunk_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
    provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer,
    style_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    style = STYLES[style_name]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", {"type": "stream", "mode": "malformed_chunk", "after": 3})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, _ = await collect(manager)
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.provider == style.primary
    assert result.text == primary_text(style_name) and result.failures == ()
    assert f"[WARNING] Fragmento ilegible de '{style.primary}' omitido: " in capsys.readouterr().err


async def test_finish_without_done_ends_at_once(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """A finish_reason, then the body ends without [DONE]: the answer is whole and nobody waits for more."""
    style = STYLES["api"]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", {"type": "stream", "mode": "no_done_finished"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, elapsed = await collect(manager)
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.provider == "openai"
    assert result.text == primary_text("api") and result.finish_reason == "stop"
    assert elapsed < IDLE


@pytest.mark.parametrize("style_name", STYLES)
async def test_a_failure_before_the_first_token_falls_back_like_a_plain_call(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    style = STYLES[style_name]
    use(monkeypatch, style.env(provider_server.url, fallback_server.url))
    provider_server.fault("chat", {"type": "http", "status": 503, "body": {"error": "busy"}, "always": True})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, _ = await collect(manager)
        stats = manager.stats()
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.provider == style.fallback and result.restarts == ()
    assert [f.kind for f in result.failures] == [ErrorKind.SERVER_ERROR] * 3
    assert len(provider_server.requests("chat")) == 3 and stats[style.primary].retries == 2


async def test_groq_usage_comes_from_x_groq(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer
) -> None:
    use(monkeypatch, {"PATCODE_LOAD_PLUGINS": "groq", "GROQ_API_KEY": "gsk_stream_suite_key_000000000",
                      "GROQ_BASE_URL": f"{provider_server.url}/openai/v1"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        events, _ = await collect(manager)
    result = events[-1]
    assert isinstance(result, CompletionResult) and result.usage.output_tokens == 8
    assert result.extra["usage"]["queue_time"] == 0.02
    sent = provider_server.requests("chat")[0]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
