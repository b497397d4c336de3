"""Settings: the core's ``LLM_*`` values composed with each plugin's own.

``from patcode_core.config import settings`` gives a lazily loaded view:
``settings.llm.default_provider``, ``settings.llm.auto_fallback``,
``settings.llm.<provider>.api_key`` or, flat, ``settings.llm.<provider>_api_key``.
Values come from the environment first, then from ``.env`` in the working
directory, which is read once per load and served to every settings class.

Two kinds of bad value:

- the core's own (``LLM_*``, and ``PATCODE_LANG``, ``PATCODE_LOG_LEVEL``,
  ``PATCODE_LOG_FORMAT``, ``PATCODE_HOME``) are a usage error: one
  :class:`ConfigError` lists every one, naming the variable, the value and what
  is accepted — never a pydantic traceback. The ``PATCODE_*`` variables are
  checked in the environment only, because that is the only place they are
  read (they choose the language and logging before ``.env`` is read);
- a provider's bad value, or a plugin settings class that raises, leaves that
  provider out of ``settings.llm.providers`` and explains why in
  ``settings.llm.problems``; the other providers work.

Every secret loaded (each ``SecretStr``, the password of a ``user:password@``
base URL, even of a provider whose settings failed) is registered with
:func:`patcode_core.redact.remember`, so no later output shows it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from patcode_core import redact
from patcode_core.dotenv_file import DotenvFile, SharedDotenvSource, read_dotenv
from patcode_core.errors import ConfigError
from patcode_core.i18n import LANGUAGES, language_from_setting, t
from patcode_core.log import LEVELS, get_logger
from patcode_core.provider_settings import MAX_SECONDS
from patcode_core.settings_base import (
    DEFAULT_ENV_FILE,
    PatCodeSettings,
    is_secret_annotation,
    reads_shared_dotenv,
    shared_dotenv,
)
from patcode_core.wire.bounded_body import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from patcode_core.plugins import PluginHost
    from patcode_core.provider_settings import ProviderSettings

#: More output tokens than any model gives in one answer.
MAX_TOKENS_LIMIT = 10_000_000

#: A cached answer lives at most a year.
MAX_CACHE_TTL = 365 * 86_400.0
#: A Redis slower than this is no shared state at all (the hot path waits on it before every send).
MAX_STATE_TIMEOUT = 10.0
#: One answer is at most 1 GiB, whatever LLM_MAX_RESPONSE_BYTES says.
MAX_RESPONSE_BYTES_LIMIT = 1 << 30


class LLMSettings(PatCodeSettings):
    """The core's own variables, all prefixed ``LLM_``."""

    model_config = SettingsConfigDict(env_prefix="LLM_")

    default_provider: str | None = None
    auto_fallback: bool = True
    fallback_order: str = ""
    temperature: float = Field(default=0.7, ge=0, le=2)
    #: Per answer; the upper bound only turns an absurd value into a clear error.
    max_tokens: int = Field(default=1024, gt=0, le=MAX_TOKENS_LIMIT)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_base_delay: float = Field(default=0.5, ge=0, le=MAX_SECONDS)
    max_rate_limit_wait: float = Field(default=60.0, ge=0, le=MAX_SECONDS)
    request_deadline: float = Field(default=120.0, gt=0, le=MAX_SECONDS)
    connect_timeout: float = Field(default=10.0, gt=0, le=MAX_SECONDS)
    first_byte_timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    breaker_threshold: int = Field(default=3, ge=1)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=MAX_SECONDS)
    breaker_max_cooldown: float = Field(default=300.0, gt=0, le=MAX_SECONDS)
    first_token_timeout: float = Field(default=30.0, gt=0, le=MAX_SECONDS)
    stream_idle_timeout: float = Field(default=15.0, gt=0, le=MAX_SECONDS)
    stream_recovery: Literal["restart", "error"] = "restart"
    #: ``off``, ``auto`` (at the primary's learned p95 of the first token) or seconds: when a
    #: stream's first token is late, start the next provider in parallel (see patcode_core.routing.hedging).
    hedge: str = "auto"
    #: Which healthy route a call with no provider named tries first (patcode_core.routing.balancing).
    routing: str = "fallback"
    #: ``weighted`` routing's shares: ``acme=3,local=1`` (1 for a route not named).
    weights: str = ""
    #: Empty (each instance keeps its own state) or ``redis://…``: rate limits, circuits, cache... shared by instances.
    state_url: str = ""
    #: The namespace of every Redis key.
    state_prefix: str = "patcode"
    #: Seconds Redis may take to connect or answer before an instance goes on with its local state.
    state_timeout: float = Field(default=0.2, gt=0, le=MAX_STATE_TIMEOUT)
    #: ``on`` (SQLite in the data directory), ``off`` (memory) or a ``postgresql://`` URL (shared history).
    stats_store: str = "on"
    log_content: bool = False
    cache: bool = False
    cache_ttl: float = Field(default=86400.0, gt=0, le=MAX_CACHE_TTL)
    prices: str = ""
    #: Decoded bytes of one provider answer (plain, streamed or a status
    #: check); beyond it the answer is ``malformed_response`` and falls back.
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0, le=MAX_RESPONSE_BYTES_LIMIT)

    @field_validator("hedge", mode="before")
    @classmethod
    def _hedge_is_off_auto_or_seconds(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text in ("off", "auto"):
            return text
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(t("config.reason.hedge")) from None
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(t("config.reason.hedge"))
        return f"{seconds:g}"

    @field_validator("routing", mode="before")
    @classmethod
    def _routing_strategy(cls, value: object) -> object:
        from patcode_core.routing.balancing import STRATEGIES

        text = str(value).strip().lower().replace("_", "-")
        if text not in STRATEGIES:
            raise ValueError(t("config.reason.routing", choices=", ".join(STRATEGIES)))
        return text

    @field_validator("weights")
    @classmethod
    def _weights_parse(cls, value: str) -> str:
        from patcode_core.routing.balancing import parse_weights

        try:
            parse_weights(value)
        except ValueError as exc:
            raise ValueError(t("config.bad_weight", entry=str(exc))) from None
        return value

    @field_validator("first_byte_timeout", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("prices")
    @classmethod
    def _prices_parse(cls, value: str) -> str:
        from patcode_core.accounting.prices import parse_price_overrides

        try:
            parse_price_overrides(value)
        except ValueError as exc:
            raise ValueError(t("config.bad_price", entry=str(exc))) from None
        return value

    @field_validator("stream_recovery", mode="before")
    @classmethod
    def _recovery_word(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("state_url", mode="before")
    @classmethod
    def _state_is_a_redis_url(cls, value: object) -> object:
        from urllib.parse import urlsplit

        from patcode_core.state.shared import SCHEMES, url_secrets

        text = str(value).strip()
        redact.remember(url_secrets(text))  # masked in the error that may quote it, and everywhere after
        if text and urlsplit(text).scheme.lower() not in SCHEMES:
            raise ValueError(t("config.reason.state_url"))
        return text

    @field_validator("state_prefix", mode="before")
    @classmethod
    def _prefix_has_no_spaces(cls, value: object) -> object:
        text = str(value).strip()
        if not text or any(char.isspace() for char in text):
            raise ValueError(t("config.reason.state_prefix"))
        return text

    @field_validator("stats_store", mode="before")
    @classmethod
    def _store_is_on_off_or_url(cls, value: object) -> object:
        from patcode_core.accounting.store_target import check_stats_store, url_secrets

        redact.remember(url_secrets(str(value)))  # masked in the error that may quote it, and everywhere after
        return check_stats_store(value)

    def secret_values(self) -> list[str]:
        """Every secret of the core: its ``SecretStr`` values and the password of a PostgreSQL ``LLM_STATS_STORE``."""
        from patcode_core.accounting.store_target import url_secrets
        from patcode_core.state.shared import url_secrets as state_secrets

        return super().secret_values() + url_secrets(self.stats_store) + state_secrets(self.state_url)

    def __repr_args__(self) -> Any:
        from patcode_core.accounting.store_target import is_postgres_url, masked_url
        from patcode_core.state.shared import masked_url as masked_state_url

        for name, value in super().__repr_args__():
            if name == "stats_store" and is_postgres_url(value):
                value = masked_url(value)
            elif name == "state_url" and value:
                value = masked_state_url(value)
            yield name, value

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

    def __init__(
        self,
        core: LLMSettings,
        providers: dict[str, ProviderSettings],
        problems: Mapping[str, str] | None = None,
    ) -> None:
        self._core = core
        self._providers = providers
        self._problems = dict(problems or {})

    def is_set(self, name: str) -> bool:
        """Whether the user set the core value ``name`` (``LLM_<NAME>``), rather than leaving its default."""
        return name in self._core.model_fields_set

    @property
    def fallback_entries(self) -> list[FallbackEntry]:
        """``LLM_FALLBACK_ORDER`` parsed into entries (unknown names kept; the manager warns)."""
        return parse_fallback_order(self._core.fallback_order)

    @property
    def providers(self) -> dict[str, ProviderSettings]:
        """Each installed provider's settings by name."""
        return dict(self._providers)

    @property
    def problems(self) -> dict[str, str]:
        """Why an installed provider's settings could not be loaded, by provider name.

        A provider named here is not in :attr:`providers`: it is out of
        service until its variables are fixed, and the others are not
        affected. The text is ready to show, in the user's language, one line
        per bad variable (``ACME_TIMEOUT='rapido' no es válido: debe ser un
        número``, a secret shown as ``'***'``) or, when the plugin's settings
        class raised, the exception's type and first line. It never holds a
        secret.
        """
        return dict(self._problems)

    def provider(self, name: str) -> ProviderSettings:
        """One provider's settings; ``KeyError`` when it is not installed."""
        return self._providers[name]

    def secret_values(self) -> list[str]:
        """Every secret of the core and of every loaded provider, for redaction."""
        values = self._core.secret_values()
        for settings in self._providers.values():
            values += settings.secret_values()
        return values

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
    "finite_number": "config.reason.finite",
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
        shown = "'***'" if is_secret_annotation(annotation) else repr(error.get("input"))
        lines.append(t("config.invalid_value", var=(prefix + field).upper(), value=shown, reason=_reason(error)))
    return lines


#: The ``PATCODE_LOG_FORMAT`` values (empty: ``text``).
LOG_FORMATS = ("text", "json")


def check_patcode_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """One readable line per bad ``PATCODE_LANG`` / ``_LOG_LEVEL`` / ``_LOG_FORMAT`` / ``_HOME`` / ``_PLUGIN_TIMEOUT`` value.

    Only the environment is checked: i18n, logging and the data directory read
    these variables from there, before any ``.env`` is read.
    """
    environ = os.environ if environ is None else environ
    lines: list[str] = []

    def bad(variable: str, reason: str) -> None:
        lines.append(t("config.invalid_value", var=variable, value=repr(environ[variable]), reason=reason))

    language = environ.get("PATCODE_LANG", "").strip()
    if language and language_from_setting(language) is None:
        bad("PATCODE_LANG", t("config.reason.language", accepted=", ".join(LANGUAGES)))
    level = environ.get("PATCODE_LOG_LEVEL", "").strip().lower()
    if level and level not in LEVELS:
        bad("PATCODE_LOG_LEVEL", t("config.reason.choice", limit=", ".join(LEVELS)))
    log_format = environ.get("PATCODE_LOG_FORMAT", "").strip().lower()
    if log_format and log_format not in LOG_FORMATS:
        bad("PATCODE_LOG_FORMAT", t("config.reason.choice", limit=", ".join(LOG_FORMATS)))
    home = environ.get("PATCODE_HOME", "").strip()
    if home:
        try:
            Path(home).expanduser()
        except RuntimeError:  # "~nosuchuser/…", or "~" with no home directory
            bad("PATCODE_HOME", t("config.reason.home", prefix=home.split("/")[0]))
    plugin_timeout = environ.get("PATCODE_PLUGIN_TIMEOUT", "").strip()
    if plugin_timeout:
        try:
            seconds = float(plugin_timeout)
        except ValueError:
            bad("PATCODE_PLUGIN_TIMEOUT", t("config.reason.number"))
        else:
            if not (math.isfinite(seconds) and seconds > 0):
                bad("PATCODE_PLUGIN_TIMEOUT", t("config.reason.gt", limit="0"))
    return lines


#: A piece of a key pasted with spaces inside is registered too, when this long.
_MIN_SECRET_PIECE = 8


def _raw_secrets(name: str, settings_class: type[BaseSettings], dotenv: DotenvFile) -> list[str]:
    """The secrets a provider whose settings failed was given, read as written (environment, then ``.env``).

    Its ``api_key`` and every ``SecretStr`` field, and the password of its base URL.
    """
    values: list[str] = []
    try:
        sources = (EnvSettingsSource(settings_class), SharedDotenvSource(settings_class, dotenv))
        fields = dict(settings_class.model_fields)
    except Exception as exc:  # a class too broken to describe its own fields
        get_logger().debug("settings_secrets_unreadable", provider=name, error=type(exc).__name__)
        return values
    for field_name, field in fields.items():
        secret = field_name == "api_key" or is_secret_annotation(field.annotation)
        if not secret and field_name != "base_url":
            continue
        for source in sources:
            try:
                raw, _, _ = source.get_field_value(field, field_name)
            except Exception as exc:
                get_logger().debug("settings_secrets_unreadable", provider=name, error=type(exc).__name__)
                continue
            if not isinstance(raw, str) or not raw.strip():
                continue
            raw = raw.strip()
            if secret:
                values += [raw, *(piece for piece in raw.split() if len(piece) >= _MIN_SECRET_PIECE)]
            elif password := redact.url_password(raw):
                values.append(password)
            break
    return values


def _load_provider(
    settings_class: type[BaseSettings], env_file: str | Path | None
) -> tuple[Any, list[str], str | None]:
    """A provider's settings and its secrets, or ``None`` and why not; never raises an ``Exception``."""
    from patcode_core.plugins import describe_exception

    try:
        shared = reads_shared_dotenv(settings_class)
        loaded = settings_class(_env_file=None if shared else env_file)  # type: ignore[call-arg]
        return loaded, loaded.secret_values(), None
    except ValidationError as exc:
        try:
            return None, [], "\n".join(describe_validation_error(settings_class, exc))
        except Exception as inner:
            return None, [], t("config.settings_class_failed", error=describe_exception(inner))
    except Exception as exc:
        return None, [], t("config.settings_class_failed", error=describe_exception(exc))


class _DropRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _python_dotenv_silenced() -> Iterator[None]:
    """python-dotenv warns in English once per class that reads ``.env``; PatCode reports each line once itself."""
    logger = logging.getLogger("dotenv.main")
    drop = _DropRecords()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _read_env_file(env_file: str | Path | None, problems: list[str]) -> DotenvFile:
    try:
        dotenv = read_dotenv(env_file)
    except (UnicodeDecodeError, OSError) as exc:
        problems.append(t("config.env_unreadable", file=env_file, error=f"{type(exc).__name__}: {exc}"))
        return DotenvFile()
    if dotenv.unreadable_lines:
        log = get_logger()
        for line in dotenv.unreadable_lines:
            log.warning("env_line_unreadable", file=str(env_file), line=line)
    return dotenv


def load_settings(host: PluginHost | None = None, env_file: str | Path | None = DEFAULT_ENV_FILE) -> Settings:
    """Read the core's and every loaded provider's settings.

    :raises ConfigError: a bad core value (``LLM_*``, ``PATCODE_*``) or an
        unreadable ``.env``; one error lists every one. A provider's bad value
        only leaves that provider out (see :attr:`LLMConfig.problems`).
    """
    if host is None:
        from patcode_core.plugins import PluginHost

        host = PluginHost.discover()
    core_problems: list[str] = []
    dotenv = _read_env_file(env_file, core_problems)
    providers: dict[str, ProviderSettings] = {}
    provider_problems: dict[str, str] = {}
    secrets: list[str] = []
    with shared_dotenv(dotenv), _python_dotenv_silenced():
        core: LLMSettings | None = None
        try:
            core = LLMSettings(_env_file=None)  # type: ignore[call-arg]
            secrets += core.secret_values()
        except ValidationError as exc:
            core_problems.extend(describe_validation_error(LLMSettings, exc))
        core_problems += check_patcode_environment()
        for name, info in host.providers.items():
            loaded, provider_secrets, problem = _load_provider(info.settings_class, env_file)
            if loaded is not None:
                providers[name] = loaded
                secrets += provider_secrets
            else:
                provider_problems[name] = problem or ""
                secrets += _raw_secrets(name, info.settings_class, dotenv)
    redact.remember(secrets)
    if core_problems or core is None:
        raise ConfigError(redact.redact("\n".join(core_problems)), t("config.fix_hint"))
    problems = {name: redact.redact(text) for name, text in provider_problems.items()}
    return Settings(llm=LLMConfig(core, providers, problems))


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

__all__ = [
    "FallbackEntry",
    "LLMConfig",
    "LLMSettings",
    "SecretStr",
    "Settings",
    "check_patcode_environment",
    "describe_validation_error",
    "load_settings",
    "settings",
]
