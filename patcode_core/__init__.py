"""PatCode's LLM provider layer: plugin host, routing with fallback, stats and CLI.

Plugin authors need ``hookimpl`` and the types; applications use
``LLMManager`` (async) or ``SyncLLMManager``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patcode_core.hookspecs import hookimpl

__version__ = "0.2.0"

if TYPE_CHECKING:
    from patcode_core.agent import PatAgent
    from patcode_core.manager import LLMManager, SyncLLMManager

_LAZY = {
    "LLMManager": "patcode_core.manager",
    "SyncLLMManager": "patcode_core.manager",
    "PatAgent": "patcode_core.agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["LLMManager", "PatAgent", "SyncLLMManager", "__version__", "hookimpl"]
