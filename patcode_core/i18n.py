"""User-facing text: one catalogue per language, Spanish first.

The language is chosen per call from ``PATCODE_LANG`` (``es`` or ``en``) or,
when that is unset, from an English locale (``LC_ALL``, ``LC_MESSAGES``,
``LANG``). Plugins keep their own :class:`Catalogue` beside their code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar

LANGUAGES = ("es", "en")
DEFAULT_LANGUAGE = "es"
#: The language of one task, when it is not the process's: a web page in the browser's language.
language_override: ContextVar[str | None] = ContextVar("patcode_language", default=None)


def language_from_setting(value: str) -> str | None:
    """The language a ``PATCODE_LANG`` value names (``en``, ``en_US``, ``es_ES.UTF-8``), or ``None`` if none."""
    code = value.strip().lower().split("_")[0].split(".")[0]
    return code if code in LANGUAGES else None


def current_language() -> str:
    """The language user-facing text is rendered in right now."""
    override = language_override.get()
    if override is not None:
        return override
    chosen = os.environ.get("PATCODE_LANG", "").strip()
    if chosen:
        return language_from_setting(chosen) or DEFAULT_LANGUAGE
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value:
            return "en" if value.lower().startswith("en") else DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


class Catalogue:
    """Messages by key for every language; ``t(key, **fields)`` renders one."""

    def __init__(self, **languages: Mapping[str, str]) -> None:
        missing = set(LANGUAGES) - set(languages)
        if missing:
            raise ValueError(f"catalogue lacks languages: {sorted(missing)}")
        self.languages = {name: dict(messages) for name, messages in languages.items()}

    def t(self, key: str, **fields: object) -> str:
        """Render ``key`` in the current language with ``fields`` filled in."""
        messages = self.languages[current_language()]
        template = messages.get(key) or self.languages[DEFAULT_LANGUAGE][key]
        return template.format(**fields) if fields else template

    def keys(self, language: str) -> set[str]:
        """Every key one language defines (for the catalogue-parity test)."""
        return set(self.languages[language])


def _core_catalogue() -> Catalogue:
    from patcode_core.messages import en, es

    return Catalogue(es=es.MESSAGES, en=en.MESSAGES)


CORE = _core_catalogue()


def t(key: str, **fields: object) -> str:
    """Render a core message in the current language."""
    return CORE.t(key, **fields)
