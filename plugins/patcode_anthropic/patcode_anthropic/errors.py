"""Anthropic's errors, as ProviderErrors of the right kind with their cure.

The error reference (https://platform.claude.com/docs/en/api/errors, read
2026-11-26) gives every error the same body, whether it comes with an HTTP
status or as an ``event: error`` inside a 200 stream::

    {"type": "error", "error": {"type": "not_found_error", "message": "..."}, "request_id": "req_..."}

and every answer a ``request-id`` header. The ``error.type`` decides the kind;
the HTTP status only when there is no readable type (a proxy's HTML page,
Cloudflare's 413):

=========================  ======  ==================================================
``error.type``             status  ErrorKind
=========================  ======  ==================================================
``invalid_request_error``  400     ``bad_request``; ``context_length`` when the prompt
                                   is too long; ``quota_exhausted`` when the credit
                                   balance is too low
``authentication_error``   401     ``authentication``
``billing_error``          402     ``quota_exhausted``
``permission_error``       403     ``authentication``
``not_found_error``        404     ``model_not_found`` (the message names the model),
                                   else ``endpoint_not_found``
``request_too_large``      413     ``context_length``
``rate_limit_error``       429     ``rate_limit``, with the wait the headers ask for
``api_error``              500     ``server_error``
``timeout_error``          504     ``server_error``
``overloaded_error``       529     ``server_error`` (retried, then the next provider)
=========================  ======  ==================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from patcode_anthropic.messages import MESSAGES
from patcode_core.plugin import ErrorKind, ProviderContext, ProviderError, RateLimitHeaders, retry_after_seconds

#: Characters of the server's message kept in ours.
DETAIL_LIMIT = 300

#: Anthropic's rate-limit headers (https://platform.claude.com/docs/en/api/rate-limits): the
#: remaining counts of the most restrictive limit in force, and when each is full again, as RFC 3339.
RATE_LIMIT_HEADERS = RateLimitHeaders(
    requests_remaining="anthropic-ratelimit-requests-remaining",
    tokens_remaining="anthropic-ratelimit-tokens-remaining",
    requests_reset="anthropic-ratelimit-requests-reset",
    tokens_reset="anthropic-ratelimit-tokens-reset",
    reset_format="timestamp",
)

#: The ``error.type`` each status stands for when the body does not say (the table above).
_TYPE_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


_KNOWN_TYPES = frozenset(_TYPE_OF_STATUS.values())


def _type_of_status(status: int | None) -> str:
    """The ``error.type`` to act on when the body names none, or one added after this plugin.

    Inside a stream (no status) that is a server-side failure. 408 and 409 are
    retried by Anthropic's own SDKs, like the 5xx.
    """
    if status is None or status >= 500 or status in (408, 409):
        return _TYPE_OF_STATUS.get(status or 0, "api_error")
    return _TYPE_OF_STATUS.get(status, "invalid_request_error")


@dataclass(frozen=True, slots=True)
class AnthropicError:
    """What an error body said: its ``error.type``, its message, and the request's id."""

    type: str
    message: str
    request_id: str | None = None

    @property
    def detail(self) -> str:
        """The message cut short, with the request id Anthropic's support asks for."""
        text = " ".join(self.message.split())[:DETAIL_LIMIT]
        return f"{text} (request-id {self.request_id})" if self.request_id else text


def parse_error(body: object, request_id: str | None = None) -> AnthropicError | None:
    """The error of a decoded body (``{"type": "error", "error": {...}}``), or ``None`` if it holds none."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), Mapping):
        return None
    error = body["error"]
    body_id = body.get("request_id")
    return AnthropicError(
        type=str(error.get("type") or ""),
        message=str(error.get("message") or ""),
        request_id=request_id or (str(body_id) if body_id else None),
    )


def read_error(response: httpx.Response) -> AnthropicError:
    """The error an answer carries: its JSON body, or what can be said of a body that is not one."""
    request_id = response.headers.get("request-id") or None
    try:
        parsed = parse_error(response.json(), request_id)
    except (json.JSONDecodeError, UnicodeDecodeError):
        parsed = None
    if parsed is not None:
        return parsed
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if "html" in content_type:
        text = MESSAGES.t("html_body")
    else:
        text = response.text.strip() or MESSAGES.t("not_json", status=response.status_code, content_type=content_type or "?")
    return AnthropicError(type="", message=text, request_id=request_id)


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks to wait: ``retry-after``, else the reset of whichever limit is at zero."""
    explicit = retry_after_seconds(headers)
    if explicit is not None:
        return explicit
    names = RATE_LIMIT_HEADERS
    resets = []
    for remaining, reset in ((names.requests_remaining, names.requests_reset), (names.tokens_remaining, names.tokens_reset)):
        if (headers.get(remaining) or "").strip() == "0":
            seconds = names.seconds_until(headers.get(reset))
            if seconds is not None:
                resets.append(seconds)
    return max(resets) if resets else None


def error_from_response(context: ProviderContext, response: httpx.Response, model: str) -> ProviderError:
    """The ProviderError for a non-200 answer."""
    if 300 <= response.status_code < 400:
        return context.redirect_error(response, model)
    return classify(
        context,
        read_error(response),
        model,
        status=response.status_code,
        headers=response.headers,
        url=str(response.request.url),
    )


def in_stream_error(context: ProviderContext, data: object, model: str, request_id: str | None) -> ProviderError:
    """The ProviderError for an ``event: error`` sent inside a 200 stream (``overloaded_error``, ...)."""
    error = parse_error(data, request_id) or AnthropicError("", str(data), request_id)
    return classify(context, error, model)


def classify(
    context: ProviderContext,
    error: AnthropicError,
    model: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    url: str = "",
) -> ProviderError:
    """The kind, message and cure of one Anthropic error (the table in this module's docstring).

    :param status: the HTTP status; ``None`` for an error sent inside a stream.
    """
    kind_name = error.type if error.type in _KNOWN_TYPES else _type_of_status(status)
    where = f"HTTP {status}" if status is not None else MESSAGES.t("where_stream")
    fields = {"where": where, "type": error.type or kind_name, "detail": error.detail or "?", "model": model}
    lowered = error.message.lower()
    model_var = context.var("model")

    def make(kind: ErrorKind, key: str, suggestion: str, retry_after: float | None = None) -> ProviderError:
        return context.error(
            kind, MESSAGES.t(key, **fields), suggestion, status_code=status, retry_after=retry_after, model=model
        )

    if kind_name == "authentication_error":
        return make(ErrorKind.AUTHENTICATION, "auth", MESSAGES.t("check_key"))
    if kind_name == "permission_error":
        return make(ErrorKind.AUTHENTICATION, "permission", MESSAGES.t("check_permission", var=model_var))
    if kind_name == "billing_error" or "credit balance" in lowered:
        return make(ErrorKind.QUOTA_EXHAUSTED, "billing", MESSAGES.t("check_billing"))
    if kind_name == "not_found_error":
        if "model" in lowered:
            suggestion = MESSAGES.t("choose_model" if context.settings.official else "choose_listed_model", var=model_var)
            return make(ErrorKind.MODEL_NOT_FOUND, "model_not_found", suggestion)
        fields["url"] = url or context.settings.base_url
        return make(ErrorKind.ENDPOINT_NOT_FOUND, "endpoint_not_found", MESSAGES.t("check_url", var=context.var("base_url")))
    if kind_name == "request_too_large":
        return make(ErrorKind.CONTEXT_LENGTH, "too_large", MESSAGES.t("shorten"))
    if kind_name == "rate_limit_error":
        wait = rate_limit_wait(headers) if headers is not None else None
        suggestion = MESSAGES.t("wait", seconds=f"{wait:.1f}") if wait is not None else MESSAGES.t("rate_limit_hint")
        return make(ErrorKind.RATE_LIMIT, "rate_limit", suggestion, wait)
    if kind_name == "overloaded_error":
        return make(ErrorKind.SERVER_ERROR, "overloaded", MESSAGES.t("retry_later"))
    if kind_name in ("api_error", "timeout_error"):
        return make(ErrorKind.SERVER_ERROR, "server", MESSAGES.t("retry_later"))
    return _invalid_request(make, lowered, model_var)


def _invalid_request(make: Callable[..., ProviderError], lowered: str, model_var: str) -> ProviderError:
    """A 400 ``invalid_request_error`` (or another 4xx): what in the request the message blames."""
    if "prompt is too long" in lowered or "context limit" in lowered or "context window" in lowered:
        # "prompt is too long: 208310 tokens > 200000 maximum";
        # "input length and `max_tokens` exceed context limit: 187254 + 20000 > 200000, ..."
        return make(ErrorKind.CONTEXT_LENGTH, "context", MESSAGES.t("shorten"))
    if "prefill" in lowered:
        # "This model does not support assistant message prefill. The conversation must end with a user message."
        return make(ErrorKind.BAD_REQUEST, "prefill", MESSAGES.t("end_with_user"))
    if "temperature" in lowered:
        # "temperature is deprecated for this model" (Claude Opus 4.7 and later, every 5.x model)
        return make(ErrorKind.BAD_REQUEST, "temperature", MESSAGES.t("never_temperature"))
    if "max_tokens" in lowered:
        # "max_tokens: 200000 > 64000, which is the maximum allowed number of output tokens for ..."
        return make(ErrorKind.BAD_REQUEST, "max_tokens", MESSAGES.t("lower_max_tokens"))
    return make(ErrorKind.BAD_REQUEST, "bad_request", MESSAGES.t("bad_request_hint", var=model_var))
