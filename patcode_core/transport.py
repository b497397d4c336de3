"""Turns what the network does (refused, reset, silent, told us to wait) into ProviderErrors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from patcode_core.durations import parse_duration, sane_wait
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.i18n import t


def _number(text: str | None) -> float | None:
    """The text as ``float()`` reads it (``inf`` and ``nan`` included); ``None`` when it cannot."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks us to wait: ``retry-after-ms``, then ``Retry-After`` (seconds or HTTP date).

    A finite wait in ``[0, MAX_WAIT]`` (longer ones are cut to :data:`~patcode_core.durations.MAX_WAIT`),
    or ``None`` when no header says one readably: ``inf``, ``nan``, a negative
    number, a date no calendar holds or odd bytes are unreadable, never an error.
    A date already past is a wait of 0.
    """
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        wait = sane_wait(milliseconds / 1000)
        if wait is not None:
            return wait
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return sane_wait(seconds)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (ValueError, OverflowError, OSError):  # unreadable, or a year or offset out of range
        return None
    return sane_wait(max(0.0, when - (time.time() if now is None else now)))


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a rate-limited answer asks us to wait, from every header that can say it.

    ``retry-after-ms`` and ``Retry-After`` come first. Without them, the
    ``x-ratelimit-reset-*`` duration of whichever limit is at zero (or the
    longest reset given) is the earliest a new request can succeed. Always
    ``None`` or a finite wait in ``[0, MAX_WAIT]``, whatever the headers hold.
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
