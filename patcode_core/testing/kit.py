"""One conformance check's world: the plugin alone in a host, a clean environment with a fake key, respx as its server.

Each check of :mod:`patcode_core.testing.checks` gets a fresh :class:`Kit`;
:meth:`Kit.run` runs it and applies the description's ``known_failures``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from patcode_core.context import ProviderContext
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.provider_settings import ProviderSettings
from patcode_core.testing.description import ProviderDescription, StreamCase, WireCase
from patcode_core.testing.environment import PatcodeEnv, clean, prefix_of
from patcode_core.testing.hosts import BACKUP, BackupProvider, host_for, infos_of, load_plugin, manager_for
from patcode_core.testing.wire import serve, url_of
from patcode_core.types import CompletionRequest, Message, ProviderInfo

PROMPT = "Hola: responde con una frase."

#: The core's settings during every check: no history on disk, no hedging, no retries unless a check asks.
BASE_ENV = {
    "LLM_STATS_STORE": "off",
    "LLM_HEDGE": "off",
    "LLM_MAX_RETRIES": "0",
    "LLM_RETRY_BASE_DELAY": "0",
}


class Kit:
    """One check's world: the plugin alone in a host, a clean environment with its fake key, and respx as its server."""

    def __init__(self, description: ProviderDescription, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.description = description
        self.plugin = load_plugin(description.plugin)
        self.info = self._pick(infos_of(self.plugin), description.provider)
        self.name = self.info.name
        self.prefix = prefix_of(self.info)
        #: The variable the fake key goes in: the declared key variable, else the base class's ``NAME_API_KEY``.
        self.key_env = self.info.key_env or f"{self.prefix}API_KEY"
        self.env: PatcodeEnv = clean(monkeypatch, tmp_path, [self.prefix])
        variables = dict(BASE_ENV, LLM_FALLBACK_ORDER=self.name)
        if description.key is not None:
            variables[self.key_env] = description.key
        variables.update(description.env)
        self.env.set(variables)
        self._host: PluginHost | None = None

    @staticmethod
    def _pick(infos: list[Any], provider: str | None) -> ProviderInfo:
        valid = [info for info in infos if isinstance(info, ProviderInfo)]
        if provider is not None:
            valid = [info for info in valid if info.name == provider]
        assert len(valid) == 1, (
            f"the description must name one provider of the plugin (provider=...); it brings {[i.name for i in valid]}"
        )
        return valid[0]

    # -- what the checks use -------------------------------------------

    def settings(self) -> ProviderSettings:
        """The provider's settings as the environment sets them now."""
        return self.info.settings_class(_env_file=None)

    def url(self, case: WireCase | StreamCase) -> tuple[str, Any]:
        """The method and URL a case answers."""
        path = case.path if case.path is not None else self.description.path
        base = self.settings().base_url
        assert base or path.startswith(("http://", "https://")), (
            f"{self.name} has no base URL: give each case's path as a whole URL"
        )
        return (case.method or self.description.method).upper(), url_of(base, path)

    @contextmanager
    def serving(self, case: WireCase | StreamCase, cut: str | None = None) -> Iterator[Any]:
        """While inside, the provider's server answers ``case`` (the route is yielded, to count requests)."""
        method, url = self.url(case)
        with serve(method, url, case, cut=cut) as route:
            yield route

    def manager(self, *, backup: BackupProvider | None = None, **env: str) -> LLMManager:
        """A manager over the plugin alone (and ``backup``, next in the fallback order), after setting ``env``."""
        if backup is not None:
            env.setdefault("LLM_FALLBACK_ORDER", f"{self.name},{BACKUP}")
        self.env.set(env)
        return manager_for(self.plugin, provider=self.name, backup=backup)

    @asynccontextmanager
    async def context(self) -> AsyncIterator[ProviderContext]:
        """The plugin's context, for calling its hooks directly (before the core redacts anything)."""
        context = ProviderContext(self.info, self.settings())
        try:
            yield context
        finally:
            await context.aclose()

    def request(self) -> CompletionRequest:
        return CompletionRequest(messages=(Message("user", PROMPT),), model=self.settings().model, temperature=0.7, max_tokens=1024)

    def host(self) -> PluginHost:
        """A host holding the plugin alone, for calling its hooks directly."""
        if self._host is None:
            self._host = host_for(self.plugin, provider=self.name)
        return self._host

    def has_hook(self, hook: str) -> bool:
        return bool(self.host().caller(hook, self.name).get_hookimpls())

    async def call(self, hook: str, context: ProviderContext, **arguments: Any) -> Any:
        """One hook of the plugin, called as the core calls it, its answer awaited."""
        answer = self.host().caller(hook, self.name)(provider=self.name, context=context, **arguments)
        return await answer if inspect.isawaitable(answer) else answer

    # -- running one check ---------------------------------------------

    def run(self, check_id: str, check: Callable[..., Awaitable[None]], *arguments: Any) -> None:
        """Run one check; a check listed in ``known_failures`` must fail (and is then an expected failure)."""
        __tracebackhide__ = True
        known = self.description.known_failures.get(check_id) or self.description.known_failures.get(check_id.split("[")[0])
        try:
            asyncio.run(check(self, *arguments))
        except Exception:  # an assertion of the check, or what the plugin raised in it
            if known:
                pytest.xfail(f"known failure: {known}")
            raise
        if known:
            pytest.fail(f"{check_id} is listed in known_failures ({known!r}) but passes now: remove it from the description")
