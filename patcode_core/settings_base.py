"""What every PatCode settings class shares, the core's and each plugin's.

- ``.env`` is read once per :func:`patcode_core.config.load_settings` and the
  same values are served to every class (:func:`shared_dotenv`);
- a float is never ``inf`` or ``nan`` (``allow_inf_nan=False``, inherited by
  every subclass's ``model_config``);
- a secret (any ``SecretStr`` field) is trimmed, and a secret with a line
  break, a space, a control or a non-ASCII character inside is a bad value:
  such a key can only have been pasted wrong, and would fail far away, in an
  HTTP header.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from patcode_core.dotenv_file import ENCODING, DotenvFile, SharedDotenvSource
from patcode_core.i18n import t

DEFAULT_ENV_FILE = ".env"

_shared: ContextVar[DotenvFile | None] = ContextVar("patcode_shared_dotenv", default=None)


@contextmanager
def shared_dotenv(dotenv: DotenvFile) -> Iterator[None]:
    """While inside, every :class:`PatCodeSettings` built with ``_env_file=None`` reads ``dotenv``."""
    token = _shared.set(dotenv)
    try:
        yield
    finally:
        _shared.reset(token)


def reads_shared_dotenv(settings_class: type[BaseSettings]) -> bool:
    """Whether ``settings_class`` takes its ``.env`` values from :func:`shared_dotenv`.

    A class that replaces ``settings_customise_sources`` without calling ours
    reads its ``.env`` itself, as pydantic-settings does by default.
    """
    if not issubclass(settings_class, PatCodeSettings):
        return False
    hook = getattr(settings_class.settings_customise_sources, "__func__", None)
    return hook is PatCodeSettings.settings_customise_sources.__func__  # type: ignore[attr-defined]


def is_secret_annotation(annotation: Any) -> bool:
    """Whether a field's annotation holds a ``SecretStr`` (``SecretStr``, ``SecretStr | None``...)."""
    return annotation is not None and "SecretStr" in str(annotation)


def secret_problem(value: str) -> str | None:
    """Why ``value`` (already trimmed) cannot be a key, or ``None`` when it can."""
    if "\n" in value or "\r" in value:
        return t("config.reason.secret_newline")
    if any(char.isspace() for char in value):
        return t("config.reason.secret_space")
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in value):
        return t("config.reason.secret_control")
    if not value.isascii():
        return t("config.reason.secret_non_ascii")
    return None


class PatCodeSettings(BaseSettings):
    """Base of :class:`~patcode_core.config.LLMSettings` and :class:`~patcode_core.provider_settings.ProviderSettings`."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE, env_file_encoding=ENCODING, extra="ignore", allow_inf_nan=False
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual order (init, environment, ``.env``, secrets dir), ``.env`` from the shared read when there is one."""
        shared = _shared.get()
        if shared is not None:
            dotenv_settings = SharedDotenvSource(settings_cls, shared)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    def secret_values(self) -> list[str]:
        """Every non-empty ``SecretStr`` value these settings hold, for redaction."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name, None)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    @field_validator("*")
    @classmethod
    def _secret_is_one_clean_token(cls, value: Any) -> Any:
        if not isinstance(value, SecretStr):
            return value
        text = value.get_secret_value()
        trimmed = text.strip()
        problem = secret_problem(trimmed)
        if problem is not None:
            raise ValueError(problem)
        return value if trimmed == text else SecretStr(trimmed)
