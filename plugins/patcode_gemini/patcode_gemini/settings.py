"""``GEMINI_*`` settings: key, model, base URL (plus the timeout, RPM and cache every provider has)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from patcode_core.plugin import ProviderSettings
from patcode_gemini.messages import MESSAGES

#: Google's recommended replacement for ``gemini-2.5-flash``, which the Gemini API shuts down on
#: 2026-12-01 (https://ai.google.dev/gemini-api/docs/deprecations, as read on 2026-11-10); a stable
#: model on https://ai.google.dev/gemini-api/docs/models (read 2026-11-26), priced like 2.5 Flash.
DEFAULT_MODEL = "gemini-3.5-flash-lite"
OFFICIAL_BASE_URL = "https://generativelanguage.googleapis.com"
#: Google API keys (AI Studio, Cloud console) start with this; 39 characters in all.
KEY_PREFIX = "AIza"
KEY_ENV = "GEMINI_API_KEY"


class GeminiSettings(ProviderSettings):
    """``GEMINI_API_KEY``, ``GEMINI_MODEL``, ``GEMINI_BASE_URL``, ``GEMINI_TIMEOUT``, ``GEMINI_RPM``, ``GEMINI_CACHE``."""

    model_config = SettingsConfigDict(env_prefix="GEMINI_")

    model: str = DEFAULT_MODEL
    base_url: str = OFFICIAL_BASE_URL

    def config_warnings(self) -> list[str]:
        """Warn about a key that is not shaped like a Google API key (it never says the key)."""
        key = self.api_key_value()
        if key is not None and not key.startswith(KEY_PREFIX):
            return [MESSAGES.t("key_prefix")]
        return []
