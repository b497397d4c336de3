"""Groq for PatCode: chat completions at ``https://api.groq.com/openai/v1``.

Settings (environment or ``.env``): ``GROQ_API_KEY``, ``GROQ_MODEL``,
``GROQ_TIMEOUT``, ``GROQ_BASE_URL``, ``GROQ_RPM`` (default 30, the free tier).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from patcode_core.plugin import Catalogue, Price, ProviderInfo, chat_completions

NAME = "groq"
#: Groq retired llama-3.1-70b-versatile, mixtral-8x7b-32768 and, on 2026-08-16,
#: the Llama 3.x models; openai/gpt-oss-120b is its recommended replacement.
DEFAULT_MODEL = "openai/gpt-oss-120b"
KEY_PREFIX = "gsk_"
FREE_TIER_RPM = 30
#: USD per million tokens, from https://groq.com/pricing as read on the date given.
PRICES = {
    "openai/gpt-oss-120b": Price(0.15, 0.75, "2025-08-05"),
    "openai/gpt-oss-20b": Price(0.10, 0.50, "2025-08-05"),
}

MESSAGES = Catalogue(
    es={
        "key_prefix": "GROQ_API_KEY no parece una clave de Groq (debería empezar con 'gsk_'). Verifica tu GROQ_API_KEY",
        "billing": "Revisa tu plan y límites en https://console.groq.com/settings/limits",
    },
    en={
        "key_prefix": "GROQ_API_KEY does not look like a Groq key (it should start with 'gsk_'). Check your GROQ_API_KEY",
        "billing": "Check your plan and limits at https://console.groq.com/settings/limits",
    },
)


class GroqSettings(chat_completions.ChatCompletionsSettings):
    """``GROQ_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="GROQ_")

    model: str = DEFAULT_MODEL
    base_url: str = "https://api.groq.com/openai/v1"
    #: Groq's free tier allows 30 requests per minute.
    rpm: int = Field(default=FREE_TIER_RPM, ge=0)

    def config_warnings(self) -> list[str]:
        """Warn about a key that is not shaped like Groq's."""
        key = self.api_key_value()
        if key is not None and not key.startswith(KEY_PREFIX):
            return [MESSAGES.t("key_prefix")]
        return []


def _dialect() -> chat_completions.Dialect:
    return chat_completions.Dialect(
        max_tokens_field="max_completion_tokens",
        models_url="https://console.groq.com/docs/models",
        billing_hint=MESSAGES.t("billing"),
        stream_usage_in="x_groq",  # Groq's last stream chunk: {"x_groq": {"id": ..., "usage": {...}}}
    )


plugin = chat_completions.ChatCompletionsPlugin(
    ProviderInfo(
        name=NAME,
        display_name="Groq",
        settings_class=GroqSettings,
        key_env="GROQ_API_KEY",
        priority=10,
        description="Groq Cloud (API compatible con chat completions)",
        prices=PRICES,
    ),
    _dialect,
)
