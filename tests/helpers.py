"""Small builders shared by the core tests: fake providers registered for one test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydantic_settings import SettingsConfigDict

from patcode_core import hookimpl
from patcode_core.errors import ErrorKind
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.provider_settings import ProviderSettings
from patcode_core.types import Availability, CompletionRequest, ProviderInfo, ProviderReply, Usage


def settings_class(prefix: str, model: str = "m1") -> type[ProviderSettings]:
    """A settings class for a fake provider with env prefix ``prefix``."""
    return type(
        f"{prefix.title()}Settings",
        (ProviderSettings,),
        {
            "model_config": SettingsConfigDict(env_prefix=f"{prefix.upper()}_"),
            "__annotations__": {"model": str, "base_url": str},
            "model": model,
            "base_url": "http://127.0.0.1:9",
        },
    )


class FakeProvider:
    """A provider plugin object whose behaviour a test sets per call."""

    def __init__(self, name: str, *, key_env: str | None = None, priority: int = 50, model: str = "m1") -> None:
        self.name = name
        self.key_env = key_env
        self.priority = priority
        self.settings_class = settings_class(name, model)
        self.calls: list[CompletionRequest] = []
        #: Seconds each completion takes before its behaviour runs.
        self.delay = 0.0
        self.behaviour: Callable[[CompletionRequest], ProviderReply] = lambda request: ProviderReply(
            text=f"{name} answers", model=request.model, finish_reason="stop", usage=Usage(3, 4)
        )

    @hookimpl
    def provider_info(self) -> ProviderInfo:
        return ProviderInfo(
            name=self.name,
            display_name=self.name.title(),
            settings_class=self.settings_class,
            key_env=self.key_env,
            priority=self.priority,
        )

    @hookimpl
    async def provider_available(self, provider: str, context: Any) -> Availability:
        return Availability(True)

    @hookimpl
    async def provider_complete(self, provider: str, request: CompletionRequest, context: Any) -> ProviderReply:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.behaviour(request)


def host_with(*providers: FakeProvider) -> PluginHost:
    """A host holding only the given fake providers (no entry points)."""
    host = PluginHost()
    for provider in providers:
        host.register(provider, name=provider.name)
    return host


def manager_with(*providers: FakeProvider) -> LLMManager:
    """A manager over fake providers, reading no .env."""
    return LLMManager(host=host_with(*providers), env_file=None)


def failing(kind: ErrorKind, provider: str, message: str = "boom") -> Callable[[CompletionRequest], ProviderReply]:
    """A behaviour that raises a ProviderError of ``kind``."""
    from patcode_core.errors import ProviderError

    def behaviour(request: CompletionRequest) -> ProviderReply:
        raise ProviderError(provider, kind, message, f"fix {provider}")

    return behaviour


def two_server_env(primary: str, fallback: str, primary_url: str, fallback_url: str, **extra: str) -> dict[str, str]:
    """Environment for ``openai`` and ``ollama`` on two loopback servers, ``primary`` tried first."""
    urls = {primary: primary_url, fallback: fallback_url}
    return {
        "PATCODE_LOAD_PLUGINS": "openai,ollama",
        "OPENAI_API_KEY": "sk-loopback-suite-key-000000000",
        "OPENAI_BASE_URL": f"{urls['openai']}/v1",
        "OLLAMA_BASE_URL": urls["ollama"],
        "LLM_FALLBACK_ORDER": f"{primary},{fallback}",
        **extra,
    }


def provider_prefixes() -> tuple[str, ...]:
    """``LLM_``, ``PATCODE_`` and every installed provider's own prefix, third-party plugins included."""
    prefixes = {"LLM_", "PATCODE_", "GROQ_", "OLLAMA_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "LOCAL_"}
    for info in PluginHost.discover().providers.values():
        prefix = str(info.settings_class.model_config.get("env_prefix", ""))
        if prefix:
            prefixes.add(prefix.upper())
    return tuple(sorted(prefixes))


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` every 20 ms until it holds or ``seconds`` pass; whether it held (a background thread's
    work, such as a writer catching up after its server came back, takes as long as a loaded machine makes it)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
