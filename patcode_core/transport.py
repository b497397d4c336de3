"""Turns what the network does (refused, reset, silent, told us to wait) into ProviderErrors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from patcode_core.durations import parse_duration
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.i18n import t


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks us to wait: ``retry-after-ms``, then ``Retry-After`` (seconds or HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a rate-limited answer asks us to wait, from every header that can say it.

    ``retry-after-ms`` and ``Retry-After`` come first. Without them, the
    ``x-ratelimit-reset-*`` duration of whichever limit is at zero (or the
    longest reset given) is the earliest a new request can succeed.
    """
    explicit = retry_after_seconds(headers, now)
    if explicit is not None:
        return explicit
    resets = {}
    for dimension in ("requests", "tokens"):
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{dimension}"))
        if reset is not None:
            resets[dimension] = reset
    if not resets:
        return None
    exhausted = [
        resets[dimension]
        for dimension in resets
        if (headers.get(f"x-ratelimit-remaining-{dimension}") or "").strip() == "0"
    ]
    return max(exhausted or resets.values())


def transport_error(
    provider: str,
    exc: httpx.TransportError,
    *,
    url: str,
    timeout: float,
    url_var: str,
    timeout_var: str,
    unreachable_suggestion: str | None = None,
    model: str | None = None,
) -> ProviderError:
    """The ProviderError for an ``httpx`` transport failure (refused, reset, timed out)."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(
            provider,
            ErrorKind.TIMEOUT,
            t("error.timeout"),
            t("suggest.timeout", seconds=f"{timeout:g}", var=timeout_var),
            model=model,
        )
    if isinstance(exc, httpx.ConnectError):
        return ProviderError(
            provider,
            ErrorKind.UNREACHABLE,
            t("error.connect", url=url),
            unreachable_suggestion or t("suggest.check_url", var=url_var),
            model=model,
        )
    return ProviderError(
        provider,
        ErrorKind.CONNECTION,
        t("error.connection_lost", url=url),
        unreachable_suggestion or t("suggest.retry_later"),
        model=model,
    )
