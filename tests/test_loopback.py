"""The real plugins over real sockets: a provider server process on loopback, faults included."""

from __future__ import annotations

import time

import pytest
from fakes.server_process import FakeProviderServer, closed_port_url

from patcode_core.errors import AllProvidersFailedError, ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.terminal.render import providers_block


def point_all_at(monkeypatch: pytest.MonkeyPatch, server_url: str, **overrides: str) -> None:
    """Every plugin talks to the loopback server (Groq under its /openai/v1 prefix)."""
    values = {
        "GROQ_API_KEY": "gsk_loopback_test_key_000000",
        "GROQ_BASE_URL": f"{server_url}/openai/v1",
        "OPENAI_API_KEY": "sk-loopback-test-key-000000",
        "OPENAI_BASE_URL": f"{server_url}/v1",
        "OLLAMA_BASE_URL": server_url,
        "LLM_FALLBACK_ORDER": "groq,ollama,openai",
    }
    values.update(overrides)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def new_manager() -> LLMManager:
    return LLMManager(host=PluginHost.discover(), env_file=None)


@pytest.mark.parametrize(("provider", "path", "text"), [
    ("groq", "/openai/v1/chat/completions", "api says: hola"),
    ("openai", "/v1/chat/completions", "api says: hola"),
    ("ollama", "/api/chat", "ollama says: hola"),
])
async def test_each_provider_answers_over_real_sockets(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, provider: str, path: str, text: str
) -> None:
    point_all_at(monkeypatch, provider_server.url)
    async with new_manager() as manager:
        result = await manager.complete("hola", provider=provider, fallback=False)
    assert (result.provider, result.text) == (provider, text)
    seen = provider_server.requests("chat")
    assert [r["path"] for r in seen] == [path]
    if provider != "ollama":
        assert seen[0]["headers"]["authorization"].startswith("Bearer ")


async def test_server_down_falls_back_to_the_next_provider(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    down = closed_port_url()
    point_all_at(monkeypatch, provider_server.url, GROQ_BASE_URL=f"{down}/openai/v1")
    async with new_manager() as manager:
        result = await manager.complete("hola")
        stats = manager.stats()
    assert result.provider == "ollama" and result.failures[0].kind is ErrorKind.UNREACHABLE
    assert capsys.readouterr().err.splitlines() == [
        f"[WARNING] Provider 'groq' falló: No se pudo conectar a {down}/openai/v1",
        "[INFO] Intentando fallback a 'ollama'...",
        "✓ Fallback exitoso a 'ollama'",
    ]
    assert (stats["groq"].failures, stats["ollama"].successes) == (1, 1)
    assert [r["path"] for r in provider_server.requests("chat")] == ["/api/chat"]


async def test_silent_server_times_out_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer
) -> None:
    point_all_at(monkeypatch, provider_server.url, GROQ_TIMEOUT="0.5")
    provider_server.fault("chat", {"type": "hang"})
    started = time.perf_counter()
    async with new_manager() as manager:
        result = await manager.complete("hola")
    assert time.perf_counter() - started < 5
    assert result.provider == "ollama" and result.failures[0].kind is ErrorKind.TIMEOUT
    assert result.failures[0].message == "el provider estuvo 0.5s sin enviar nada (GROQ_TIMEOUT)"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"type": "reset"}, ErrorKind.CONNECTION),
        ({"type": "malformed"}, ErrorKind.MALFORMED_RESPONSE),
        ({"type": "no_choices"}, ErrorKind.MALFORMED_RESPONSE),
        ({"type": "http", "status": 503, "body": {"error": {"message": "overloaded", "type": "server_error"}}}, ErrorKind.SERVER_ERROR),
        ({"type": "http", "status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>", "content_type": "text/html"}, ErrorKind.SERVER_ERROR),
        ({"type": "http", "status": 401, "body": {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}}}, ErrorKind.AUTHENTICATION),
        ({"type": "http", "status": 429, "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, "headers": {"retry-after": "3"}}, ErrorKind.RATE_LIMIT),
    ],
)
async def test_primary_faults_fall_back_over_real_sockets(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fault: dict, kind: ErrorKind
) -> None:
    point_all_at(monkeypatch, provider_server.url, LLM_MAX_RETRIES="0")
    provider_server.fault("chat", fault)
    async with new_manager() as manager:
        result = await manager.complete("hola")
    assert result.provider == "ollama" and result.failures[0].kind is kind
    assert len(provider_server.requests("chat")) == 2


async def test_ollama_model_not_pulled_over_real_sockets(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer
) -> None:
    point_all_at(monkeypatch, provider_server.url, OLLAMA_MODEL="deepseek-coder:33b")
    async with new_manager() as manager:
        with pytest.raises(ProviderError) as caught:
            await manager.complete("hola", provider="ollama", fallback=False)
        status = {row.name: row for row in await manager.providers_status()}
    assert caught.value.suggestion == "Descarga el modelo: ollama pull deepseek-coder:33b"
    assert status["ollama"].kind is ErrorKind.MODEL_NOT_FOUND and status["groq"].available


async def test_everything_down_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    down = closed_port_url()
    point_all_at(monkeypatch, down, GROQ_API_KEY="", OPENAI_API_KEY="")
    async with new_manager() as manager:
        with pytest.raises(AllProvidersFailedError) as caught:
            await manager.complete("hola")
    assert str(caught.value).splitlines() == [
        "Todos los providers fallaron:",
        "  - groq: GROQ_API_KEY no está configurada. Define GROQ_API_KEY en tu .env",
        f"  - ollama: No se pudo conectar a {down}. Asegúrate que Ollama esté corriendo: ollama serve",
        "  - openai: OPENAI_API_KEY no está configurada. Define OPENAI_API_KEY en tu .env",
    ]


async def test_providers_block_over_real_sockets(monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer) -> None:
    point_all_at(monkeypatch, provider_server.url, OPENAI_API_KEY="", PATCODE_LOAD_PLUGINS="groq,ollama,openai")
    async with new_manager() as manager:
        block = providers_block(await manager.providers_status())
    assert block.splitlines() == [
        "Providers LLM:",
        "  ✅ groq (actual) · openai/gpt-oss-120b",
        "  ✅ ollama · qwen2.5-coder:1.5b",
        "  ❌ openai · gpt-4o-mini — OPENAI_API_KEY no está configurada. Define OPENAI_API_KEY en tu .env",
    ]
    assert provider_server.requests("chat") == []
