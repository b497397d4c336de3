"""Google's error bodies as ProviderErrors, each with the kind that decides fallback and its cure.

The Gemini API answers a failure with ``google.rpc.Status`` as JSON::

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}, ...]}}

(``streamGenerateContent`` may wrap it in a list: ``[{"error": {...}}]``). The
statuses and their causes are the table of
https://ai.google.dev/gemini-api/docs/troubleshooting ("Gemini API backend
error codes"; read 2026-11-26):

======  ===================  =============================================  =====================
HTTP    status               cause                                          kind
======  ===================  =============================================  =====================
400     INVALID_ARGUMENT     malformed request; ``API_KEY_INVALID`` key;     BAD_REQUEST,
                             "input token count ... exceeds the maximum"    AUTHENTICATION,
                                                                            CONTEXT_LENGTH
400     FAILED_PRECONDITION  free tier not in your country, no billing      QUOTA_EXHAUSTED
402     RESOURCE_EXHAUSTED   prepaid credit used up                         QUOTA_EXHAUSTED
403     PERMISSION_DENIED    key without access, suspended or leaked        AUTHENTICATION
404     NOT_FOUND            model (or file) not found                      MODEL_NOT_FOUND
429     RESOURCE_EXHAUSTED   a rate limit (RPM, TPM, RPD)                   RATE_LIMIT (per-day
                                                                            only: QUOTA_EXHAUSTED)
499     CANCELLED            the connection closed before the answer        CONNECTION
500     INTERNAL             Google's side (or a context too long)          SERVER_ERROR
503     UNAVAILABLE          overloaded or down                             SERVER_ERROR
504     DEADLINE_EXCEEDED    could not finish in time                       SERVER_ERROR
======  ===================  =============================================  =====================

Only ``message`` is shown (trimmed, with anything shaped like a Google key
masked); ``details`` may hold a ``DebugInfo`` that quotes the key, so it is
read for ``reason``, ``retryDelay`` and quota names and never printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from patcode_core.plugin import ErrorKind, ProviderContext, ProviderError, parse_duration, retry_after_seconds
from patcode_gemini.messages import MESSAGES

DETAIL_LIMIT = 300
#: A Google API key anywhere in a text (one PatCode was not told about: the configured key is masked by the core).
GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_\-]{20,}")
#: ``ErrorInfo.reason`` when the key itself is refused (it comes with HTTP 400 INVALID_ARGUMENT, not 401), and
#: the messages it comes with ("API key not valid.", "API Key not found.", "API key expired. Please renew the API key.").
KEY_REASONS = frozenset({"API_KEY_INVALID"})
_KEY_TEXTS = ("api key not valid", "api key not found", "api key expired")
#: "The input token count (1091639) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT_TEXT = re.compile(r"exceeds the maximum number of tokens|input token count|context (?:length|window)", re.IGNORECASE)
_SERVER_STATES = frozenset({"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "DATA_LOSS"})


@dataclass(frozen=True, slots=True)
class GoogleError:
    """What PatCode reads of one ``google.rpc.Status``.

    :param code: the HTTP status it states (``error.code``), when it is a number.
    :param message: ``error.message``, trimmed and with Google keys masked.
    :param status: ``error.status`` (``RESOURCE_EXHAUSTED``), or ``""``.
    :param reasons: every ``ErrorInfo.reason`` in ``details`` (``API_KEY_INVALID``).
    :param retry_delay: ``RetryInfo.retryDelay`` in seconds (``"37s"``), when given.
    :param quota_ids: the ``quotaId`` of every ``QuotaFailure`` violation.
    """

    code: int | None
    message: str
    status: str
    reasons: tuple[str, ...] = ()
    retry_delay: float | None = None
    quota_ids: tuple[str, ...] = ()


def clean(text: object) -> str:
    """A provider's text fit to show: one line's worth, no Google key in it."""
    return GOOGLE_KEY.sub("***", str(text).strip())[:DETAIL_LIMIT]


def read_error(payload: Any) -> GoogleError | None:
    """The error of a Google error body (``{"error": {...}}`` or ``[{"error": {...}}]``), or ``None``."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    reasons: list[str] = []
    quota_ids: list[str] = []
    retry_delay = None
    for detail in error.get("details") if isinstance(error.get("details"), list) else ():
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reasons.append(detail["reason"])
        elif kind.endswith("google.rpc.RetryInfo") and isinstance(detail.get("retryDelay"), str):
            retry_delay = parse_duration(detail["retryDelay"])
        elif kind.endswith("google.rpc.QuotaFailure") and isinstance(detail.get("violations"), list):
            quota_ids += [str(v["quotaId"]) for v in detail["violations"] if isinstance(v, dict) and v.get("quotaId")]
    code = error.get("code")
    return GoogleError(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        message=clean(error.get("message") or ""),
        status=str(error.get("status") or ""),
        reasons=tuple(reasons),
        retry_delay=retry_delay,
        quota_ids=tuple(quota_ids),
    )


def json_or_none(response: httpx.Response) -> Any:
    """The body as JSON, or ``None`` when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def error_from_response(context: ProviderContext, response: httpx.Response, model: str) -> ProviderError:
    """The ProviderError for a non-200 answer from the Gemini API (or from whatever sits at the base URL)."""
    status = response.status_code
    if 300 <= status < 400:
        return context.redirect_error(response, model)
    error = read_error(json_or_none(response))
    if error is None:
        return _not_google(context, response, model)
    return from_google(context, error, model, status=status, headers=response.headers, url=str(response.request.url))


def from_google(
    context: ProviderContext,
    error: GoogleError,
    model: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    url: str = "",
    in_stream: bool = False,
) -> ProviderError:
    """Map one Google error to its kind. ``status`` is the HTTP status (``error.code`` for an error inside a 200)."""
    status = status if status is not None else error.code
    state = error.status
    shown = status if status is not None else "?"
    detail = error.message or state or f"HTTP {shown}"
    lowered = detail.lower()
    key_var = context.info.key_env or context.var("api_key")

    def make(kind: ErrorKind, message: str, suggestion: str, retry_after: float | None = None) -> ProviderError:
        return context.error(kind, message, suggestion, status_code=status, retry_after=retry_after, model=model)

    if KEY_REASONS.intersection(error.reasons) or any(text in lowered for text in _KEY_TEXTS):
        return make(ErrorKind.AUTHENTICATION, MESSAGES.t("bad_key", detail=detail), MESSAGES.t("check_key", var=key_var))
    if status in (401, 403) or state in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return make(
            ErrorKind.AUTHENTICATION,
            MESSAGES.t("denied", status=shown, state=state, detail=detail),
            MESSAGES.t("check_access", var=key_var),
        )
    if status == 404 or state == "NOT_FOUND":
        if "model" in lowered:
            return make(
                ErrorKind.MODEL_NOT_FOUND,
                MESSAGES.t("model_not_found", model=model, detail=detail),
                MESSAGES.t("choose_model", var=context.var("model")),
            )
        return make(
            ErrorKind.ENDPOINT_NOT_FOUND,
            MESSAGES.t("endpoint_not_found", url=url or context.settings.base_url, detail=detail),
            MESSAGES.t("check_url", var=context.var("base_url")),
        )
    if status == 402:
        return make(ErrorKind.QUOTA_EXHAUSTED, MESSAGES.t("quota", status=shown, state=state, detail=detail), MESSAGES.t("add_credit"))
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        if error.quota_ids and all("PerDay" in quota for quota in error.quota_ids):
            # Only daily quotas were hit: waiting the retryDelay (seconds) cannot help before midnight Pacific.
            return make(
                ErrorKind.QUOTA_EXHAUSTED,
                MESSAGES.t("daily_quota", quota=", ".join(dict.fromkeys(error.quota_ids)), detail=detail),
                MESSAGES.t("renews_at_midnight"),
            )
        wait = _longest(retry_after_seconds(headers) if headers is not None else None, error.retry_delay)
        suggestion = MESSAGES.t("wait", seconds=f"{wait:.1f}") if wait is not None else MESSAGES.t("rate_limit_hint")
        return make(ErrorKind.RATE_LIMIT, MESSAGES.t("rate_limit", detail=detail), suggestion, wait)
    if state == "FAILED_PRECONDITION":
        return make(
            ErrorKind.QUOTA_EXHAUSTED, MESSAGES.t("precondition", status=shown, detail=detail), MESSAGES.t("billing_or_region")
        )
    if status == 413 or _CONTEXT_TEXT.search(detail):
        return make(ErrorKind.CONTEXT_LENGTH, MESSAGES.t("context_length", detail=detail), MESSAGES.t("shorten"))
    if status == 499 or state == "CANCELLED":
        return make(ErrorKind.CONNECTION, MESSAGES.t("cancelled", status=shown, detail=detail), MESSAGES.t("retry_later"))
    if (status is not None and status >= 500) or state in _SERVER_STATES:
        template = "in_stream" if in_stream else "server"
        hint = MESSAGES.t("internal_hint", var=context.var("model")) if state == "INTERNAL" else MESSAGES.t("retry_later")
        return make(ErrorKind.SERVER_ERROR, MESSAGES.t(template, status=shown, state=state, detail=detail), hint)
    return make(
        ErrorKind.BAD_REQUEST,
        MESSAGES.t("bad_request", status=shown, state=state, detail=detail),
        MESSAGES.t("check_request", var=context.var("model")),
    )


def _longest(*waits: float | None) -> float | None:
    """The longest of the waits the server asked for (``Retry-After`` and ``RetryInfo``), if any."""
    known = [wait for wait in waits if wait is not None]
    return max(known) if known else None


def _not_google(context: ProviderContext, response: httpx.Response, model: str) -> ProviderError:
    """A failure whose body is not Google's: a proxy, a gateway, a wrong base URL."""
    status = response.status_code
    content_type = response.headers.get("content-type", "").split(";")[0]
    if "html" in content_type:
        detail = MESSAGES.t("html_body")
    else:
        detail = clean(response.text) or f"HTTP {status}"
    if status == 404:
        return context.error(
            ErrorKind.ENDPOINT_NOT_FOUND,
            MESSAGES.t("endpoint_not_found", url=str(response.request.url), detail=detail),
            MESSAGES.t("check_url", var=context.var("base_url")),
            status_code=status,
            model=model,
        )
    error = GoogleError(status, detail, "")
    return from_google(context, error, model, status=status, headers=response.headers, url=str(response.request.url))


def malformed(context: ProviderContext, detail: str, model: str, suggestion: str | None = None) -> ProviderError:
    """A 200 answer PatCode cannot use."""
    return context.error(
        ErrorKind.MALFORMED_RESPONSE, MESSAGES.t("malformed", detail=detail), suggestion or MESSAGES.t("retry_later"), model=model
    )


def json_body(context: ProviderContext, response: httpx.Response, model: str) -> Any:
    """A 200 body as JSON; anything else (a proxy's HTML page) is a MALFORMED_RESPONSE naming what came."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        content_type = response.headers.get("content-type", "").split(";")[0] or "?"
        raise context.error(
            ErrorKind.MALFORMED_RESPONSE,
            MESSAGES.t("not_json", status=response.status_code, content_type=content_type),
            MESSAGES.t("check_url", var=context.var("base_url")),
            status_code=response.status_code,
            model=model,
        ) from None
