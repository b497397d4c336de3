"""Turns what the network does (refused, reset, silent, told us to wait) into ProviderErrors."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.i18n import t
from patcode_core.routing.durations import parse_duration, sane_wait


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

    A finite wait in ``[0, MAX_WAIT]`` (longer ones are cut to :data:`~patcode_core.routing.durations.MAX_WAIT`),
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


#: ``getaddrinfo`` failures: the name could not be looked up (no network, no DNS).
_DNS_ERRNOS = {socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_FAIL, getattr(socket, "EAI_NODATA", -5)}
#: The machine has no route to the host: no network at all, or it is down.
_NO_ROUTE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}
_DNS_TEXT = ("name or service not known", "temporary failure in name resolution", "nodename nor servname", "no address associated")


def network_cause(exc: BaseException) -> str | None:
    """Why a connection could not be opened: ``"dns"``, ``"no_route"``, or ``None`` (refused, or unknown).

    httpx wraps the socket's error in its own; the cause is found down the
    chain of ``__cause__`` / ``__context__``, or in the text when only that is left.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) and current.errno in _DNS_ERRNOS:
            return "dns"
        if isinstance(current, OSError) and current.errno in _NO_ROUTE_ERRNOS:
            return "no_route"
        lowered = str(current).lower()
        if any(text in lowered for text in _DNS_TEXT):
            return "dns"
        if "network is unreachable" in lowered or "no route to host" in lowered:
            return "no_route"
        current = current.__cause__ or current.__context__
    return None


def transport_error(
    provider: str,
    exc: httpx.TransportError,
    *,
    url: str,
    timeout: float,
    url_var: str,
    timeout_var: str,
    url_was_set: bool = True,
    unreachable_suggestion: str | None = None,
    model: str | None = None,
) -> ProviderError:
    """The ProviderError for an ``httpx`` transport failure (refused, reset, timed out, no network).

    :param timeout: the limit that expired, ``timeout_var`` the setting behind it.
    :param url_was_set: whether the user set ``url_var``; a default URL that
        cannot be reached is the network's fault, not a setting to check.
    """
    seconds = f"{timeout:g}"

    def error(kind: ErrorKind, message: str, suggestion: str) -> ProviderError:
        return ProviderError(provider, kind, message, suggestion, model=model)

    if isinstance(exc, httpx.ConnectTimeout):
        return error(ErrorKind.TIMEOUT, t("error.connect_timeout", url=url, seconds=seconds), t("suggest.connect_timeout", var=timeout_var))
    if isinstance(exc, httpx.ReadTimeout):
        return error(ErrorKind.TIMEOUT, t("error.read_timeout", seconds=seconds, var=timeout_var), t("suggest.read_timeout", var=timeout_var))
    if isinstance(exc, httpx.TimeoutException):
        return error(ErrorKind.TIMEOUT, t("error.send_timeout", seconds=seconds, var=timeout_var), t("suggest.check_network"))
    check_url = t("suggest.check_url", var=url_var) if url_was_set else t("suggest.check_network")
    if isinstance(exc, httpx.ConnectError):
        cause = network_cause(exc)
        if cause == "dns":
            host = httpx.URL(url).host if url else "?"
            return error(ErrorKind.UNREACHABLE, t("error.dns", host=host), t("suggest.offline") if not url_was_set else f"{t('suggest.offline')}; {check_url}")
        if cause == "no_route":
            return error(ErrorKind.UNREACHABLE, t("error.no_route", url=url), t("suggest.offline"))
        return error(ErrorKind.UNREACHABLE, t("error.connect", url=url), unreachable_suggestion or check_url)
    return error(ErrorKind.CONNECTION, t("error.connection_lost", url=url), unreachable_suggestion or t("suggest.retry_later"))
