"""A clean environment for a test: no PatCode variable inherited, Spanish messages, a temporary ``PATCODE_HOME``."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from patcode_core.types import ProviderInfo

CORE_PREFIXES = ("LLM_", "PATCODE_")


@functools.cache
def installed_prefixes() -> tuple[str, ...]:
    """``LLM_``, ``PATCODE_`` and the prefix of every installed provider (read once per process)."""
    from patcode_core.plugins import PluginHost

    prefixes = set(CORE_PREFIXES)
    for info in PluginHost.discover(use_env=False).providers.values():
        prefixes.add(prefix_of(info))
    return tuple(sorted(prefix for prefix in prefixes if prefix))


def prefix_of(info: ProviderInfo) -> str:
    """The provider's own prefix (``ACME_``), upper case."""
    return str(info.settings_class.model_config.get("env_prefix", "")).upper()


@dataclass(slots=True)
class PatcodeEnv:
    """What :func:`clean` made: the temporary ``PATCODE_HOME``, and a way to set more variables for this test."""

    home: Path
    monkeypatch: pytest.MonkeyPatch

    def set(self, variables: Mapping[str, str] | None = None, /, **more: str) -> None:
        """Set variables until the test ends (``env.set(ACME_MODEL="acme-2")``)."""
        for name, value in {**(variables or {}), **more}.items():
            self.monkeypatch.setenv(name, str(value))


def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra_prefixes: Iterable[str] = ()) -> PatcodeEnv:
    """Remove every ``LLM_``, ``PATCODE_`` and provider variable, then set ``PATCODE_LANG=es`` and a fresh ``PATCODE_HOME``.

    The working directory becomes ``tmp_path`` (no ``.env`` is read from
    where pytest was started) and the process-wide redaction registry is
    emptied. Everything is undone at the end of the test.
    """
    from patcode_core.redact import forget_all

    prefixes = tuple({*installed_prefixes(), *(prefix.upper() for prefix in extra_prefixes if prefix)})
    for name in list(os.environ):
        if name.upper().startswith(prefixes):
            monkeypatch.delenv(name)
    home = tmp_path / "patcode-home"
    monkeypatch.setenv("PATCODE_LANG", "es")
    monkeypatch.setenv("PATCODE_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    forget_all()
    return PatcodeEnv(home, monkeypatch)
