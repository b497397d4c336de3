"""What ``/v1/models`` lists: each provider's models, asked of the provider at most once a minute."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patcode_core.manager import LLMManager

#: Seconds a provider's own model list is reused.
TTL = 60.0
#: The longest ``/v1/models`` waits for providers' lists; a slower provider shows its configured models only.
WAIT = 3.0


class ModelCatalog:
    """Per provider: its configured model, the models the fallback order names, and what it says it serves."""

    def __init__(self, manager: LLMManager) -> None:
        self._manager = manager
        self._listed: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def _ask(self, name: str) -> None:
        answer = await self._manager.availability(name)
        self._listed[name] = (time.monotonic(), tuple(answer.models) if answer.available else ())

    async def models(self) -> dict[str, list[str]]:
        """Provider → its model ids, configured ones first, without repeats."""
        manager = self._manager
        now = time.monotonic()
        stale = [name for name in manager.installed
                 if manager.is_configured(name) and now - self._listed.get(name, (-TTL, ()))[0] >= TTL]
        if stale:
            tasks = [asyncio.ensure_future(self._ask(name)) for name in stale]
            _, late = await asyncio.wait(tasks, timeout=WAIT)
            for task in late:
                task.cancel()
        found: dict[str, list[str]] = {}
        for name in manager.installed:
            names = [manager.model_of(name)] if manager.is_configured(name) else []
            names += [entry.model for entry in manager.fallback_order if entry.provider == name and entry.model]
            names += [manager.scrub(model) for model in self._listed.get(name, (0.0, ()))[1]]
            found[name] = list(dict.fromkeys(model for model in names if model))
        return found

    def configured(self, name: str) -> list[str]:
        """The models of ``name`` known without asking it."""
        listed = self._listed.get(name, (0.0, ()))[1]
        return [self._manager.model_of(name), *listed] if self._manager.is_configured(name) else list(listed)
