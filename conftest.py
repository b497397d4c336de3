"""Shared fixtures: a clean environment per test and the loopback provider server."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))

from fakes.server_process import FakeProviderServer  # noqa: E402
from helpers import provider_prefixes  # noqa: E402

_PREFIXES = provider_prefixes()
# A shell runs a background job with SIGINT ignored, and an ignored signal is inherited across exec: the CLI
# processes the Ctrl-C tests start would never see their ^C. Give them the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
#: PATCODE_HTTP_CLIENT=aiohttp on the pytest command line runs the suite over the aiohttp transport.
_HTTP_CLIENT = os.environ.get("PATCODE_HTTP_CLIENT", "")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited PatCode variables, Spanish messages, and a cwd with no .env."""
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATCODE_LANG", "es")
    if _HTTP_CLIENT:
        monkeypatch.setenv("PATCODE_HTTP_CLIENT", _HTTP_CLIENT)
    monkeypatch.setenv("PATCODE_HOME", str(tmp_path / "patcode-home"))  # never the real user data directory
    monkeypatch.chdir(tmp_path)
    from patcode_core.redact import forget_all

    forget_all()  # secrets registered by an earlier test's settings
    return tmp_path


@pytest.fixture(scope="session")
def server_processes() -> Iterator[tuple[FakeProviderServer, FakeProviderServer]]:
    """Two loopback provider servers for the whole session: a primary and a fallback."""
    servers = (FakeProviderServer(), FakeProviderServer())
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def provider_server(server_processes: tuple[FakeProviderServer, FakeProviderServer]) -> FakeProviderServer:
    """The loopback server, reset to healthy answers for this test."""
    server_processes[0].reset()
    return server_processes[0]


@pytest.fixture
def fallback_server(server_processes: tuple[FakeProviderServer, FakeProviderServer]) -> FakeProviderServer:
    """A second loopback server, for the provider a test falls back to."""
    server_processes[1].reset()
    return server_processes[1]
