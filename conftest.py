"""Shared fixtures: a clean environment per test and the loopback provider server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))

from fakes.server_process import FakeProviderServer  # noqa: E402

_PREFIXES = ("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited PatCode variables, Spanish messages, and a cwd with no .env."""
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATCODE_LANG", "es")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def provider_server_process() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer()
    yield server
    server.stop()


@pytest.fixture
def provider_server(provider_server_process: FakeProviderServer) -> FakeProviderServer:
    """The loopback server, reset to healthy answers for this test."""
    provider_server_process.reset()
    return provider_server_process


@pytest.fixture(scope="session")
def second_server_process() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer()
    yield server
    server.stop()


@pytest.fixture
def fallback_server(second_server_process: FakeProviderServer) -> FakeProviderServer:
    """A second loopback server, for the provider a test falls back to."""
    second_server_process.reset()
    return second_server_process
