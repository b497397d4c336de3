"""The Anthropic plugin's tests: no ANTHROPIC_* variable leaks in from the machine running them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# anthropic_payloads.py, shared by the wire and conformance tests, imports from this folder.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def no_anthropic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL) in the shell must never reach a test."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)
