"""The kit's fixtures, loaded by pytest through the ``pytest11`` entry point ``patcode``.

Importing this module imports nothing of PatCode: each fixture imports what
it needs when a test asks for it. No fixture is autouse, and every name
starts with ``patcode_``, so a project's own fixtures are never shadowed.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from patcode_core.manager import LLMManager
    from patcode_core.testing.environment import PatcodeEnv

# The checks' plain asserts get pytest's detailed messages, as a test file's do.
pytest.register_assert_rewrite("patcode_core.testing.checks", "patcode_core.testing.kit", "patcode_core.testing.static")


@pytest.fixture
def patcode_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> PatcodeEnv:
    """A clean environment for this test: every ``LLM_``, ``PATCODE_`` and installed provider's variable removed,
    ``PATCODE_LANG=es``, ``PATCODE_HOME`` in ``tmp_path``, ``tmp_path`` as the working directory (no ``.env``).

    Returns a :class:`~patcode_core.testing.PatcodeEnv`: ``.home``, and ``.set(NAME=value)`` for more variables.
    """
    from patcode_core.testing.environment import clean

    return clean(monkeypatch, tmp_path)


@pytest.fixture
def patcode_manager_for(patcode_env: PatcodeEnv) -> Iterator[Callable[..., LLMManager]]:
    """A factory: ``patcode_manager_for(plugin, **env)`` sets ``env`` and returns an ``LLMManager`` over ``plugin`` alone.

    ``plugin`` is the plugin object (or module) or its entry point name. The
    plugin's own variables are cleared first, installed or not. Managers
    still open at the end of the test are closed (``async with`` closes one
    sooner, on the test's own event loop).
    """
    from patcode_core.testing.environment import prefix_of
    from patcode_core.testing.hosts import infos_of, load_plugin, manager_for

    made: list[LLMManager] = []

    def factory(plugin: Any, /, **env: str) -> LLMManager:
        loaded = load_plugin(plugin)
        for info in infos_of(loaded):
            prefix = prefix_of(info)
            for name in [name for name in os.environ if prefix and name.upper().startswith(prefix)]:
                patcode_env.monkeypatch.delenv(name)
        patcode_env.set(env)
        manager = manager_for(loaded)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        try:
            asyncio.run(manager.aclose())
        except RuntimeError as exc:  # its clients belong to a loop that is gone: say so, do not hide it
            warnings.warn(f"patcode_manager_for could not close a manager: {exc}", stacklevel=1)
