"""Settings: the core's ``LLM_*`` values composed with each plugin's own.

``from patcode_core.config import settings`` gives a lazily loaded view:
``settings.llm.default_provider``, ``settings.llm.auto_fallback``,
``settings.llm.<provider>.api_key`` or, flat, ``settings.llm.<provider>_api_key``.
Values come from the environment first, then from ``.env`` in the working
directory. A bad value raises :class:`ConfigError` naming the variable, the
value and what is accepted — never a pydantic traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from patcode_core.errors import ConfigError
from patcode_core.i18n import t

if TYPE_CHECKING:
    from patcode_core.plugins import PluginHost
    from patcode_core.provider_settings import ProviderSettings

DEFAULT_ENV_FILE = ".env"


class LLMSettings(BaseSettings):
    """The core's own variables, all prefixed ``LLM_``."""

    model_config = SettingsConfigDict(
        env_prefix="LLM_", env_file=DEFAULT_ENV_FILE, env_file_encoding="utf-8", extra="ignore"
    )

    default_provider: str | None = None
    auto_fallback: bool = True
    fallback_order: str = ""
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_base_delay: float = Field(default=0.5, ge=0)
    max_rate_limit_wait: float = Field(default=60.0, ge=0)
    request_deadline: float = Field(default=120.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    first_byte_timeout: float | None = Field(default=None, gt=0)
    breaker_threshold: int = Field(default=3, ge=1)
    breaker_cooldown: float = Field(default=30.0, gt=0)
    breaker_max_cooldown: float = Field(default=300.0, gt=0)
    first_token_timeout: float = Field(default=30.0, gt=0)
    stream_idle_timeout: float = Field(default=15.0, gt=0)
    stream_recovery: Literal["restart", "error"] = "restart"
    stats_store: Literal["on", "off"] = "on"
    log_content: bool = False
    cache: bool = False
    cache_ttl: float = Field(default=86400.0, gt=0)
    prices: str = ""

    @field_validator("first_byte_timeout", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("prices")
    @classmethod
    def _prices_parse(cls, value: str) -> str:
        from patcode_core.prices import parse_price_overrides

        try:
            parse_price_overrides(value)
        except ValueError as exc:
            raise ValueError(t("config.bad_price", entry=str(exc))) from None
        return value

    @field_validator("stream_recovery", "stats_store", mode="before")
    @classmethod
    def _recovery_word(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("default_provider", mode="before")
    @classmethod
    def _provider_name(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value


@dataclass(frozen=True, slots=True)
class FallbackEntry:
    """One step of ``LLM_FALLBACK_ORDER``: a provider and, maybe, its model."""

    provider: str
    model: str | None = None

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


def parse_fallback_order(text: str) -> list[FallbackEntry]:
    """Split ``acme,local/coder:7b`` into entries (model after the first ``/``)."""
    entries = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        provider, _, model = raw.partition("/")
        entries.append(FallbackEntry(provider.strip().lower(), model.strip() or None))
    return entries


class LLMConfig:
    """``settings.llm``: core values plus each provider's settings by name."""

    def __init__(self, core: LLMSettings, providers: dict[str, ProviderSettings]) -> None:
        self._core = core
        self._providers = providers

    @property
    def fallback_entries(self) -> list[FallbackEntry]:
        """``LLM_FALLBACK_ORDER`` parsed into entries (unknown names kept; the manager warns)."""
        return parse_fallback_order(self._core.fallback_order)

    @property
    def providers(self) -> dict[str, ProviderSettings]:
        """Each installed provider's settings by name."""
        return dict(self._providers)

    def provider(self, name: str) -> ProviderSettings:
        """One provider's settings; ``KeyError`` when it is not installed."""
        return self._providers[name]

    def secret_values(self) -> list[str]:
        """Every secret of every provider, for redaction."""
        return [value for settings in self._providers.values() for value in settings.secret_values()]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in LLMSettings.model_fields:
            return getattr(self._core, name)
        if name in self._providers:
            return self._providers[name]
        provider, _, field = name.partition("_")
        if provider in self._providers and field:
            return getattr(self._providers[provider], field)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"LLMConfig(core={self._core!r}, providers={sorted(self._providers)})"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything PatCode is configured with."""

    llm: LLMConfig


_REASONS = {
    "float_parsing": "config.reason.number",
    "float_type": "config.reason.number",
    "int_parsing": "config.reason.integer",
    "int_type": "config.reason.integer",
    "int_from_float": "config.reason.integer",
    "bool_parsing": "config.reason.bool",
    "bool_type": "config.reason.bool",
    "greater_than": "config.reason.gt",
    "greater_than_equal": "config.reason.ge",
    "less_than": "config.reason.lt",
    "less_than_equal": "config.reason.le",
    "literal_error": "config.reason.choice",
}


def _reason(error: dict[str, Any]) -> str:
    context = error.get("ctx") or {}
    key = _REASONS.get(error["type"])
    if key:
        limit = str(next(iter(context.values()), ""))
        return t(key, limit=limit.replace(" or ", ", "))
    if error["type"] == "value_error" and "error" in context:
        return str(context["error"])
    return str(error.get("msg", ""))


def describe_validation_error(settings_class: type[BaseSettings], exc: ValidationError) -> list[str]:
    """One readable line per bad variable: name, value (secrets hidden), what is accepted."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        annotation = settings_class.model_fields[field].annotation if field in settings_class.model_fields else None
        secret = annotation is not None and "SecretStr" in str(annotation)
        shown = "'***'" if secret else repr(error.get("input"))
        lines.append(t("config.invalid_value", var=(prefix + field).upper(), value=shown, reason=_reason(error)))
    return lines


def _load(settings_class: type[BaseSettings], env_file: str | Path | None, problems: list[str]) -> Any:
    try:
        return settings_class(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems.extend(describe_validation_error(settings_class, exc))
        return None
    except (UnicodeDecodeError, OSError) as exc:
        message = t("config.env_unreadable", file=env_file, error=f"{type(exc).__name__}: {exc}")
        if message not in problems:
            problems.append(message)
        return None


def load_settings(host: PluginHost | None = None, env_file: str | Path | None = DEFAULT_ENV_FILE) -> Settings:
    """Read the core's and every loaded provider's settings; one error lists every bad value."""
    if host is None:
        from patcode_core.plugins import PluginHost

        host = PluginHost.discover()
    problems: list[str] = []
    core = _load(LLMSettings, env_file, problems)
    providers: dict[str, ProviderSettings] = {}
    for name, info in host.providers.items():
        loaded = _load(info.settings_class, env_file, problems)
        if loaded is not None:
            providers[name] = loaded
    if problems:
        raise ConfigError("\n".join(problems), t("config.fix_hint"))
    return Settings(llm=LLMConfig(core, providers))


class _LazySettings:
    """Loads settings on first use, so importing this module costs nothing."""

    def __init__(self) -> None:
        self._loaded: Settings | None = None

    def reload(self) -> Settings:
        """Read the environment and ``.env`` again."""
        self._loaded = load_settings()
        return self._loaded

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._loaded is None:
            self.reload()
        return getattr(self._loaded, name)


settings: Any = _LazySettings()

__all__ = ["FallbackEntry", "LLMConfig", "LLMSettings", "SecretStr", "Settings", "load_settings", "settings"]
