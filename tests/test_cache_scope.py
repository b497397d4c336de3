"""The response cache is kept per endpoint and per account: another base URL or key never gets a cached answer."""

from __future__ import annotations

import pytest
from fakes.server_process import FakeProviderServer

from patcode_core.manager import LLMManager


async def _ask(monkeypatch: pytest.MonkeyPatch, base_url: str, key: str) -> bool:
    """One cached-capable call with this endpoint and key; True when it was served from the cache."""
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    manager = LLMManager(env_file=None)
    try:
        result = await manager.complete("hola", provider="openai", fallback=False)
    finally:
        await manager.aclose()
    return result.cached


async def test_an_answer_is_cached_per_base_url_and_per_key(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer
) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    monkeypatch.setenv("LLM_CACHE", "true")
    first_url, other_url = f"{provider_server.url}/v1", f"{provider_server.url}/proxy/v1"
    key, other_key = "sk-scope-account-one-0000", "sk-scope-account-two-0000"

    assert await _ask(monkeypatch, first_url, key) is False
    assert await _ask(monkeypatch, first_url, key) is True  # same endpoint and account: a hit
    assert await _ask(monkeypatch, other_url, key) is False  # another endpoint
    assert await _ask(monkeypatch, first_url, other_key) is False  # another account
    assert len(provider_server.requests("chat")) == 3
