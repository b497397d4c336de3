"""Every user-facing string exists in Spanish and English, in the core and in each plugin."""

from __future__ import annotations

import re
import string

import patcode_groq
import patcode_ollama
import patcode_openai
import pytest

from patcode_core.i18n import CORE, Catalogue, current_language

CATALOGUES = {"core": CORE, "groq": patcode_groq.MESSAGES, "ollama": patcode_ollama.MESSAGES, "openai": patcode_openai.MESSAGES}


@pytest.mark.parametrize("name", list(CATALOGUES))
def test_same_keys_and_placeholders_in_both_languages(name: str) -> None:
    catalogue: Catalogue = CATALOGUES[name]
    assert catalogue.keys("es") == catalogue.keys("en")
    for key in catalogue.keys("es"):
        fields = [
            {f for _, f, _, _ in string.Formatter().parse(catalogue.languages[lang][key]) if f}
            for lang in ("es", "en")
        ]
        assert fields[0] == fields[1], key


def test_every_core_key_used_in_code_exists() -> None:
    from pathlib import Path

    used = set()
    for path in (Path(__file__).parents[1] / "patcode_core").rglob("*.py"):
        used |= set(re.findall(r'\bt\(\s*"([a-z_.]+)"', path.read_text(encoding="utf-8")))
    assert used and used <= CORE.keys("es")


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"PATCODE_LANG": "en"}, "en"), ({"PATCODE_LANG": "es"}, "es"), ({"LANG": "en_US.UTF-8"}, "en"), ({"LANG": "es_ES.UTF-8"}, "es"), ({}, "es")],
)
def test_language_choice(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("PATCODE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert current_language() == expected
