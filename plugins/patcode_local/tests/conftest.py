"""The real model (SmolLM2-135M-Instruct), loaded once for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from patcode_local.model_file import default_model_path
from patcode_local.runtime import Engine, EngineKey, engine_for
from patcode_local.settings import DEFAULT_N_CTX, default_threads


@pytest.fixture(autouse=True)
def no_local_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``LOCAL_*`` from the developer's shell (the root conftest cleans the core's prefixes)."""
    for name in list(os.environ):
        if name.startswith("LOCAL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine the provider uses with default settings, its model already loaded."""
    path = default_model_path()
    if not hasattr(path, "is_file"):
        pytest.fail(f"the default model is not installed: {path}")
    engine = engine_for(EngineKey(os.fspath(path), DEFAULT_N_CTX, default_threads()))
    engine.load()
    yield engine
    assert engine.wait_idle(5), "a generation was still running at the end of the session"
