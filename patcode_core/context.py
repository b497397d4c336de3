"""What the core hands a plugin with every call: settings, one HTTP client, error helpers."""

from __future__ import annotations

import httpx

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.i18n import t
from patcode_core.provider_settings import ProviderSettings
from patcode_core.redact import redact
from patcode_core.transport import transport_error
from patcode_core.types import ProviderInfo

#: Connecting should be quick even when answers are slow.
CONNECT_TIMEOUT = 10.0
USER_AGENT = "patcode/0.1"
#: Connections kept per provider: enough for 100 concurrent calls without reconnecting.
MAX_CONNECTIONS = 128


class ProviderContext:
    """One provider's settings and its reused ``httpx.AsyncClient``.

    The client is created on first use with ``base_url`` and the provider's
    timeout (connect capped at :data:`CONNECT_TIMEOUT`) and is closed by the
    manager. Plugins send their key per request, never store it on the client.
    """

    def __init__(self, info: ProviderInfo, settings: ProviderSettings) -> None:
        self.info = info
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._secrets = settings.secret_values()

    @property
    def name(self) -> str:
        """The provider's short name."""
        return self.info.name

    @property
    def client(self) -> httpx.AsyncClient:
        """The provider's HTTP client, created once and reused."""
        if self._client is None:
            seconds = self.settings.timeout
            self._client = httpx.AsyncClient(
                base_url=self.settings.base_url,
                timeout=httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds)),
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
            )
        return self._client

    @property
    def configured(self) -> bool:
        """False when the provider needs a key that is not set (known without network)."""
        return not (self.info.key_env and self.settings.api_key is None)

    def not_configured_error(self, model: str | None = None) -> ProviderError:
        """The NOT_CONFIGURED error naming the missing key variable and how to set it."""
        var = self.info.key_env or self.var("api_key")
        return self.error(ErrorKind.NOT_CONFIGURED, t("error.not_configured", var=var), t("suggest.set_key", var=var), model=model)

    def var(self, field: str) -> str:
        """The environment variable behind one of this provider's settings (``ACME_MODEL``)."""
        prefix = str(type(self.settings).model_config.get("env_prefix", ""))
        return f"{prefix}{field}".upper()

    def redact(self, text: str) -> str:
        """``text`` without this provider's secrets or anything shaped like a key."""
        return redact(text, self._secrets)

    def error(
        self,
        kind: ErrorKind,
        message: str,
        suggestion: str = "",
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        model: str | None = None,
    ) -> ProviderError:
        """A ProviderError for this provider, with secrets removed from its text."""
        return ProviderError(
            self.name,
            kind,
            self.redact(message),
            self.redact(suggestion),
            status_code=status_code,
            retry_after=retry_after,
            model=model,
        )

    def transport_error(
        self, exc: httpx.TransportError, *, unreachable_suggestion: str | None = None, model: str | None = None
    ) -> ProviderError:
        """The ProviderError for a refused, reset or silent connection to this provider."""
        return transport_error(
            self.name,
            exc,
            url=self.settings.base_url,
            timeout=self.settings.timeout,
            url_var=self.var("base_url"),
            timeout_var=self.var("timeout"),
            unreachable_suggestion=unreachable_suggestion,
            model=model,
        )

    async def aclose(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
