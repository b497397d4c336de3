"""OpenAI for PatCode: chat completions at ``https://api.openai.com/v1``.

Settings (environment or ``.env``): ``OPENAI_API_KEY``, ``OPENAI_MODEL``,
``OPENAI_TIMEOUT``, ``OPENAI_BASE_URL`` (a proxy or a compatible server).
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from patcode_core.plugin import Catalogue, Price, ProviderInfo, chat_completions

NAME = "openai"
DEFAULT_MODEL = "gpt-4o-mini"
#: USD per million tokens (standard tier), from https://openai.com/api/pricing as read on the date given.
#: Patterns cover the dated snapshots the API answers with (``gpt-4o-mini-2024-07-18``); the longest match wins.
PRICES = {
    "gpt-4o-mini*": Price(0.15, 0.60, "2025-08-01"),
    "gpt-4o*": Price(2.50, 10.00, "2025-08-01"),
    "gpt-4.1*": Price(2.00, 8.00, "2025-08-01"),
    "gpt-4.1-mini*": Price(0.40, 1.60, "2025-08-01"),
    "gpt-4.1-nano*": Price(0.10, 0.40, "2025-08-01"),
}

MESSAGES = Catalogue(
    es={"billing": "Revisa tu plan y facturación en https://platform.openai.com/settings/organization/billing"},
    en={"billing": "Check your plan and billing at https://platform.openai.com/settings/organization/billing"},
)


class OpenAISettings(chat_completions.ChatCompletionsSettings):
    """``OPENAI_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_")

    model: str = DEFAULT_MODEL
    base_url: str = "https://api.openai.com/v1"


def _dialect() -> chat_completions.Dialect:
    return chat_completions.Dialect(
        max_tokens_field="max_completion_tokens",
        models_url="https://platform.openai.com/docs/models",
        billing_hint=MESSAGES.t("billing"),
    )


plugin = chat_completions.ChatCompletionsPlugin(
    ProviderInfo(
        name=NAME,
        display_name="OpenAI",
        settings_class=OpenAISettings,
        key_env="OPENAI_API_KEY",
        priority=30,
        description="OpenAI API (chat completions)",
        prices=PRICES,
    ),
    _dialect,
)
