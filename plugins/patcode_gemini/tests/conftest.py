"""A manager with only the gemini provider, a Google-shaped fake key, and no retries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

# gemini_payloads.py, shared by the wire and conformance tests, imports from this folder.
sys.path.insert(0, str(Path(__file__).parent))

#: Shaped like a Google API key ("AIza" + 35 characters), so no shape warning; not a real key.
FAKE_KEY = "AIzaSyFAKE-patcode-test-key-01234567890"


@pytest.fixture
def key() -> str:
    return FAKE_KEY


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "gemini")
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    # These tests read one answer each; retries have their own tests in tests/test_resilience*.py.
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    return LLMManager(host=PluginHost.discover(), env_file=None)
