"""The base every plugin's settings class extends.

A plugin subclasses :class:`ProviderSettings`, sets its ``env_prefix`` and its
defaults, and the core loads it from the environment and ``.env``::

    class AcmeSettings(ProviderSettings):
        model_config = SettingsConfigDict(env_prefix="ACME_")
        model: str = "acme-large"
        base_url: str = "https://api.acme.test/v1"

Every subclass inherits the checks of
:class:`~patcode_core.settings_base.PatCodeSettings`: no ``inf``/``nan`` in a
float, secrets trimmed and refused when they hold a line break, a space, a
control or a non-ASCII character. A bad value, or a settings class that
raises, puts only this provider out of service (``settings.llm.problems``).
"""

from __future__ import annotations

import httpx
from pydantic import Field, SecretStr, field_validator

from patcode_core.i18n import t
from patcode_core.redact import url_password
from patcode_core.settings_base import PatCodeSettings

MAX_PORT = 65535


def check_base_url(value: str) -> str:
    """``value`` trimmed and without its trailing ``/``; ``""`` means "no base URL".

    :raises ValueError: not an ``http(s)://`` URL with a host, whitespace
        inside, or a port outside 1..65535 (the reason, in the user's language).
    """
    value = value.strip().rstrip("/")
    if not value:
        return ""
    if any(char.isspace() for char in value):
        raise ValueError(t("config.bad_url"))
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(t("config.bad_url")) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(t("config.bad_url"))
    if url.port is not None and not 1 <= url.port <= MAX_PORT:
        raise ValueError(t("config.bad_port", port=url.port))
    return value


#: No time limit, wait or deadline is longer than a day (sockets cannot take far larger ones).
MAX_SECONDS = 86_400.0


class ProviderSettings(PatCodeSettings):
    """Settings every provider has: model, base URL, timeout and maybe a key."""

    api_key: SecretStr | None = None
    model: str = ""
    #: ``""``: the provider has no base URL (its plugin knows where to go).
    base_url: str = ""
    timeout: float = Field(default=30.0, gt=0, le=MAX_SECONDS)
    #: Requests per minute PatCode sends at most (0: no limit of its own).
    rpm: int = Field(default=0, ge=0)
    #: With ``LLM_CACHE=true``, whether this provider's answers are cached (``<PREFIX>_CACHE=false`` opts out).
    cache: bool = True

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("model", mode="before")
    @classmethod
    def _model_is_trimmed(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        return check_base_url(value)

    def api_key_value(self) -> str | None:
        """The key in clear, for the one place that needs it: the auth header."""
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def secret_values(self) -> list[str]:
        """Every secret this provider holds (each ``SecretStr``, a base URL's password), for redaction."""
        values = super().secret_values()
        password = url_password(self.base_url) if isinstance(self.base_url, str) else None
        if password:
            values.append(password)
        return values

    def config_warnings(self) -> list[str]:
        """Messages about suspicious but usable values (a key of the wrong shape)."""
        return []
