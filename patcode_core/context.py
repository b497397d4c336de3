"""What the core hands a plugin with every call: settings, one HTTP client, error helpers."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

from patcode_core.connection_slots import CURRENT_SHARD, MAX_CONNECTIONS, PER_SHARD, SHARDS, ConnectionSlots
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.i18n import t
from patcode_core.provider_settings import ProviderSettings
from patcode_core.redact import redact
from patcode_core.routing.ratelimit import QuotaTracker, RequestsPerMinute
from patcode_core.types import ProviderInfo
from patcode_core.wire.bounded_body import DEFAULT_MAX_RESPONSE_BYTES, ResponseTooLarge, bound_response
from patcode_core.wire.transport import transport_error

#: The model of the attempt in flight, so response headers are booked to it.
ATTEMPT_MODEL: ContextVar[str | None] = ContextVar("patcode_attempt_model", default=None)
USER_AGENT = "patcode/0.1"


class _OnFirstUse(httpx.AsyncBaseTransport):
    """A transport built on its first request (so a local ``http://`` provider never loads the CA bundle)."""

    def __init__(self, build: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._build = build
        self._real: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._real is None:
            self._real = self._build()
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        if self._real is not None:
            await self._real.aclose()


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _tls_options(limits: httpx.Limits) -> dict[str, Any]:
    """``verify``/``mounts`` for a provider's client: https through one shared, lazily loaded TLS context.

    Plain-http traffic never needs certificates, so its transport gets an
    empty (still verifying) context and ``https://`` is mounted on a
    transport built at its first request. With a proxy in the environment,
    httpx's own proxy mounts are kept and the shared context is passed as is.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return {"verify": shared_tls()}
    return {
        "verify": ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        "mounts": {"https://": _OnFirstUse(lambda: httpx.AsyncHTTPTransport(verify=shared_tls(), limits=limits))},
    }


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """One verifying TLS context for every provider's client (loading the CA bundle costs ~20 ms each time).

    Built as httpx builds its own: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when
    set, else certifi's bundle.
    """
    return httpx.create_ssl_context()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The limits that apply below the provider's own ``*_TIMEOUT``.

    :param connect: seconds to open a connection (``LLM_CONNECT_TIMEOUT``).
    :param first_byte: seconds from sending to the first byte of the answer
        (``LLM_FIRST_BYTE_TIMEOUT``; ``None``: the provider's timeout).
    """

    connect: float = 10.0
    first_byte: float | None = None


class ProviderContext:
    """One provider's settings, its reused ``httpx.AsyncClient`` and its rate-limit state.

    The client is created on first use with ``base_url``, the connect and
    first-byte limits of :class:`Timeouts` (never above the provider's
    timeout), reads at most ``max_response_bytes`` decoded bytes of any answer
    (:mod:`patcode_core.wire.bounded_body`), never follows a redirect (a key must
    not travel to another host), and is closed by the manager. It reads the ``x-ratelimit-*`` and
    ``Retry-After`` headers of every answer into :attr:`quota` by itself, so
    a plugin that uses it gets rate-limit awareness for free. Plugins send
    their key per request, never store it on the client.
    """

    def __init__(
        self,
        info: ProviderInfo,
        settings: ProviderSettings,
        timeouts: Timeouts | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        http_client: str = "httpx",
    ) -> None:
        self.info = info
        #: ``httpx`` (its own transport, in :data:`SHARDS` small pools) or ``aiohttp``
        #: (:mod:`patcode_core.wire.aiohttp_transport`, one pool: ``patcode serve``'s choice).
        self.http_client = http_client
        self.settings = settings
        self.timeouts = timeouts or Timeouts()
        self.max_response_bytes = max_response_bytes
        self.requests_per_minute = RequestsPerMinute(settings.rpm)
        self.quota = QuotaTracker(headers=info.rate_limit_headers)
        #: At most MAX_CONNECTIONS requests in flight; the rest wait here, in order.
        self.slots = ConnectionSlots()
        self._clients: list[httpx.AsyncClient | None] = [None] * SHARDS
        self._secrets = settings.secret_values()

    @property
    def connect_timeout(self) -> float:
        """Seconds allowed to open a connection."""
        return min(self.timeouts.connect, self.settings.timeout)

    @property
    def first_byte_timeout(self) -> float:
        """Seconds allowed between sending a request and the answer's first byte."""
        return min(self.timeouts.first_byte or self.settings.timeout, self.settings.timeout)

    @property
    def name(self) -> str:
        """The provider's short name."""
        return self.info.name

    @property
    def client(self) -> httpx.AsyncClient:
        """The provider's HTTP client for this request (one of :data:`SHARDS`, each created once and reused)."""
        index = CURRENT_SHARD.get() if self.http_client == "httpx" else 0
        client = self._clients[index]
        if client is None:
            if self.http_client == "aiohttp":
                from patcode_core.wire.aiohttp_transport import AiohttpTransport

                options: dict[str, Any] = {"transport": AiohttpTransport(MAX_CONNECTIONS, shared_tls), "trust_env": False}
            else:
                limits = httpx.Limits(max_connections=PER_SHARD, max_keepalive_connections=PER_SHARD)
                options = {"limits": limits, **_tls_options(limits)}
            client = self._clients[index] = httpx.AsyncClient(
                base_url=self.settings.base_url,
                timeout=httpx.Timeout(
                    self.settings.timeout, connect=self.connect_timeout, read=self.first_byte_timeout
                ),
                headers={"User-Agent": USER_AGENT},
                event_hooks={"response": [self._bound_body, self._observe_rate_limits]},
                follow_redirects=False,
                **options,
            )
        return client

    async def _bound_body(self, response: httpx.Response) -> None:
        bound_response(response, self.max_response_bytes)

    async def _observe_rate_limits(self, response: httpx.Response) -> None:
        model = ATTEMPT_MODEL.get()
        if model is not None:
            self.quota.observe(model, response.status_code, response.headers)

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
        if isinstance(exc, httpx.ConnectTimeout):
            timeout, timeout_var = self.connect_timeout, "LLM_CONNECT_TIMEOUT"
        elif isinstance(exc, httpx.ReadTimeout) and self.first_byte_timeout < self.settings.timeout:
            timeout, timeout_var = self.first_byte_timeout, "LLM_FIRST_BYTE_TIMEOUT"
        else:
            timeout, timeout_var = self.settings.timeout, self.var("timeout")
        return transport_error(
            self.name,
            exc,
            url=self.settings.base_url,
            timeout=timeout,
            url_var=self.var("base_url"),
            timeout_var=timeout_var,
            url_was_set="base_url" in self.settings.model_fields_set,
            unreachable_suggestion=unreachable_suggestion,
            model=model,
        )

    def redirect_error(self, response: httpx.Response, model: str | None = None) -> ProviderError:
        """A 3xx: the base URL points somewhere else. Not followed (the key must not travel), falls back."""
        location = response.headers.get("location", "?")[:200]
        return self.error(
            ErrorKind.ENDPOINT_NOT_FOUND,
            t("error.redirect", status=response.status_code, location=location, var=self.var("base_url")),
            t("suggest.redirect", var=self.var("base_url")),
            status_code=response.status_code,
            model=model,
        )

    def error_from_exception(self, exc: Exception, plugin: str, model: str | None = None) -> ProviderError:
        """The ProviderError for an exception the plugin let escape (secrets removed).

        Network failures keep their kinds; an answer past the byte limit, a
        body that cannot be decoded and JSON nested too deep to read are the
        provider's malformed answers; anything else is the plugin's own bug.
        """
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, httpx.TransportError):
            return self.transport_error(exc, model=model)
        if isinstance(exc, ResponseTooLarge):
            return self.error(
                ErrorKind.MALFORMED_RESPONSE,
                t("error.response_too_large", limit=exc.limit),
                t("suggest.response_too_large", var=self.var("base_url")),
                model=model,
            )
        if isinstance(exc, httpx.DecodingError | RecursionError):
            detail = "JSON nested too deep" if isinstance(exc, RecursionError) else str(exc)
            return self.error(
                ErrorKind.MALFORMED_RESPONSE, t("error.malformed", detail=detail), t("suggest.retry_later"), model=model
            )
        from patcode_core.plugins import describe_exception

        return self.error(
            ErrorKind.PLUGIN_ERROR,
            t("error.plugin_failed", plugin=plugin, error=describe_exception(exc)),
            t("suggest.plugin_broken", plugin=plugin),
            model=model,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients that were opened."""
        opened = [client for client in self._clients if client is not None]
        self._clients = [None] * SHARDS
        for client in opened:
            await client.aclose()
