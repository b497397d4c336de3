"""``ANTHROPIC_*`` settings: key, model, base URL, and whether a temperature is sent.

The inherited ones (``ANTHROPIC_TIMEOUT``, ``ANTHROPIC_RPM``, ``ANTHROPIC_CACHE``)
mean what they mean for every provider.
"""

from __future__ import annotations

from typing import Literal

from patcode_anthropic.messages import MESSAGES
from patcode_anthropic.models import DEFAULT_MODEL
from patcode_core.plugin import ProviderSettings, SettingsConfigDict

#: The official API. Paths are added as the API reference writes them (``/v1/messages``).
DEFAULT_BASE_URL = "https://api.anthropic.com"
#: Every Anthropic API key starts so (``sk-ant-api03-...``).
KEY_PREFIX = "sk-ant-"

#: ``auto``: send PatCode's temperature only to the models known to accept one
#: (:func:`patcode_anthropic.models.accepts_temperature`); ``always`` / ``never``: force it.
SendTemperature = Literal["auto", "always", "never"]


class AnthropicSettings(ProviderSettings):
    """``ANTHROPIC_API_KEY``, ``ANTHROPIC_MODEL``, ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_SEND_TEMPERATURE``."""

    model_config = SettingsConfigDict(env_prefix="ANTHROPIC_")

    model: str = DEFAULT_MODEL
    base_url: str = DEFAULT_BASE_URL
    send_temperature: SendTemperature = "auto"

    @property
    def official(self) -> bool:
        """True when ``base_url`` is Anthropic's own API, not a proxy or a compatible server."""
        return self.base_url.rstrip("/") == DEFAULT_BASE_URL

    def config_warnings(self) -> list[str]:
        """A key not shaped like Anthropic's; a base URL that already ends in ``/v1``."""
        warnings = []
        key = self.api_key_value()
        if key is not None and not key.startswith(KEY_PREFIX):
            warnings.append(MESSAGES.t("key_prefix"))
        if self.base_url.rstrip("/").endswith("/v1"):
            warnings.append(MESSAGES.t("base_url_v1"))
        return warnings
