"""The chat-completions wire format, shared by every plugin whose server speaks it.

Many providers answer ``POST {base_url}/chat/completions`` and
``GET {base_url}/models`` with the same JSON shapes and the same error body
(``{"error": {"message", "type", "param", "code"}}``). A plugin describes
what differs in a :class:`Dialect` and calls :func:`complete` and
:func:`available` from its hooks. The core itself names no provider.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from patcode_core.context import ProviderContext
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.hookspecs import hookimpl
from patcode_core.i18n import t
from patcode_core.provider_settings import ProviderSettings
from patcode_core.routing.durations import parse_duration
from patcode_core.types import Availability, CompletionRequest, Message, ProviderInfo, ProviderReply, StreamChunk, Usage
from patcode_core.wire.sse import sse_data
from patcode_core.wire.transport import rate_limit_wait

#: How long a quick availability check may take, at most.
AVAILABILITY_TIMEOUT = 5.0
#: Unreadable chunks a stream may skip (each with a warning) before it counts as broken.
MAX_SKIPPED_CHUNKS = 3
_DETAIL_LIMIT = 300
_STANDARD_USAGE = {"prompt_tokens", "completion_tokens", "total_tokens"}
_STANDARD_TOP = {"id", "object", "created", "model", "choices", "usage"}


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one provider's chat-completions server does its own way.

    :param max_tokens_field: the field that caps output tokens on the
        provider's official API (its settings class's default ``base_url``);
        any other base URL gets ``max_tokens``, which every compatible
        server reads (see :func:`token_limit_field`).
    :param models_url: where people see which models the provider serves.
    :param billing_hint: what to check when the quota is exhausted.
    :param stream_usage_in: a top-level object of stream chunks that also
        carries ``usage`` (some providers put it there instead of, or
        besides, the ``include_usage`` chunk).
    """

    max_tokens_field: str = "max_completion_tokens"
    models_url: str = ""
    billing_hint: str = ""
    stream_usage_in: str | None = None


#: What ``<PREFIX>_MAX_TOKENS_FIELD`` may say.
TokenLimitField = Literal["auto", "max_tokens", "max_completion_tokens"]


class ChatCompletionsSettings(ProviderSettings):
    """Settings of a chat-completions provider: the base ones, plus the token-limit field.

    ``<PREFIX>_MAX_TOKENS_FIELD``: ``auto`` (default) sends the dialect's field
    to the provider's official base URL and ``max_tokens`` to any other one;
    ``max_tokens`` or ``max_completion_tokens`` forces that field.
    """

    max_tokens_field: TokenLimitField = "auto"


def official_base_url(settings: ProviderSettings) -> str:
    """The base URL the provider's settings class defaults to: its own API."""
    return _default_base_url(type(settings))


@functools.cache
def _default_base_url(settings_class: type[ProviderSettings]) -> str:
    return str(settings_class.model_fields["base_url"].default or "").rstrip("/")


def is_official(settings: ProviderSettings) -> bool:
    """True when ``base_url`` is the provider's own API, not a proxy or a compatible server."""
    return bool(settings.base_url) and settings.base_url.rstrip("/") == official_base_url(settings)


def token_limit_field(settings: ProviderSettings, dialect: Dialect) -> str:
    """The request field that carries ``max_tokens`` for this provider and base URL.

    The chat-completions reference deprecated ``max_tokens`` for ``max_completion_tokens``, but
    llama.cpp's server and many compatible servers silently ignore the new
    field and generate without a limit. So the new field goes only where it
    is known to be read: the official base URL.
    """
    forced = getattr(settings, "max_tokens_field", "auto")
    if forced != "auto":
        return str(forced)
    return dialect.max_tokens_field if is_official(settings) else "max_tokens"


def payload(request: CompletionRequest, dialect: Dialect, settings: ProviderSettings | None = None) -> dict[str, Any]:
    """The JSON body for ``POST /chat/completions`` (``settings`` picks the token-limit field)."""
    field = token_limit_field(settings, dialect) if settings is not None else dialect.max_tokens_field
    return {
        "model": request.model,
        "messages": [message.as_dict() for message in request.messages],
        "temperature": request.temperature,
        field: request.max_tokens,
        "stream": False,
    }


def _headers(context: ProviderContext) -> dict[str, str]:
    key = context.settings.api_key_value()
    return {"Authorization": f"Bearer {key}"} if key else {}


async def complete(context: ProviderContext, request: CompletionRequest, dialect: Dialect) -> ProviderReply:
    """Send one non-streaming chat completion and return the whole answer."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    try:
        response = await context.client.post(
            "/chat/completions", json=payload(request, dialect, context.settings), headers=_headers(context)
        )
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None
    if response.status_code != 200:
        raise error_from_response(context, response, request.model, dialect)
    return parse_reply(context, response, request.model)


async def stream(context: ProviderContext, request: CompletionRequest, dialect: Dialect) -> AsyncIterator[StreamChunk]:
    """Send one streaming chat completion and yield its chunks (``stream_options.include_usage`` on)."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    body = {**payload(request, dialect, context.settings), "stream": True, "stream_options": {"include_usage": True}}
    try:
        async with context.client.stream("POST", "/chat/completions", json=body, headers=_headers(context)) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_response(context, response, request.model, dialect)
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignored "stream": one whole answer is one chunk.
                await response.aread()
                reply = parse_reply(context, response, request.model)
                yield StreamChunk(reply.text, reply.finish_reason, reply.usage, reply.model, done=True, extra=reply.extra)
                return
            async for chunk in read_stream(context, sse_data(response.aiter_lines()), request.model, dialect):
                yield chunk
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None


async def read_stream(
    context: ProviderContext, events: AsyncIterator[str], model: str, dialect: Dialect
) -> AsyncIterator[StreamChunk]:
    """Turn ``chat.completion.chunk`` events into StreamChunks, ending with ``done`` at ``[DONE]``.

    A body that ends without ``[DONE]`` after a ``finish_reason`` is complete
    and ends at once; without either it ends with no ``done`` chunk (broken).
    ``[DONE]`` before any ``finish_reason`` is a cut answer and raises.
    Usage comes from the ``include_usage`` chunk or ``Dialect.stream_usage_in``.
    """
    finish: str | None = None
    usage: Usage | None = None
    answering_model: str | None = None
    extra: dict[str, Any] = {}
    skipped = 0
    async for data in events:
        if data.strip() == "[DONE]":
            if finish is None:
                # llama.cpp's server closes an interrupted generation this way: a cut answer, not a whole one.
                raise context.error(ErrorKind.CONNECTION, t("error.done_without_finish"), t("suggest.retry_later"), model=model)
            yield StreamChunk(finish_reason=finish, usage=usage, model=answering_model, done=True, extra=extra)
            return
        try:
            event = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = None
        if not isinstance(event, dict):
            skipped += 1
            if skipped > MAX_SKIPPED_CHUNKS:
                raise context.error(
                    ErrorKind.MALFORMED_RESPONSE,
                    t("error.malformed", detail=f"{skipped} unreadable stream chunks"),
                    t("suggest.retry_later"),
                    model=model,
                )
            yield StreamChunk(skipped=data[:80])
            continue
        if event.get("error") is not None:
            raise in_band_error(context, event["error"], model)
        if isinstance(event.get("model"), str):
            answering_model = event["model"]
        usage = _stream_usage(event, extra, dialect.stream_usage_in) or usage
        text, chunk_finish = _delta(context, event, model)
        finish = chunk_finish or finish
        yield StreamChunk(text=text, finish_reason=chunk_finish, model=answering_model)
    if finish is not None:
        yield StreamChunk(finish_reason=finish, usage=usage, model=answering_model, done=True, extra=extra)


def _delta(context: ProviderContext, event: dict[str, Any], model: str) -> tuple[str, str | None]:
    """(new text, finish reason) of one chunk; a refusal or a filtered finish is a CONTENT_FILTER."""
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    refusal = delta.get("refusal")
    if refusal or finish == "content_filter":
        raise context.error(
            ErrorKind.CONTENT_FILTER, t("error.content_filter", detail=refusal or finish), t("suggest.rephrase"), model=model
        )
    content = delta.get("content")
    return (content if isinstance(content, str) else ""), finish


def _stream_usage(event: dict[str, Any], extra: dict[str, Any], usage_in: str | None) -> Usage | None:
    """Token counts from an ``include_usage`` chunk or from ``event[usage_in]["usage"]``; details go to ``extra``."""
    body = event.get("usage")
    holder = event.get(usage_in) if usage_in else None
    if not isinstance(body, dict) and isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
        body = holder["usage"]
    if not isinstance(body, dict):
        return None
    details = {key: value for key, value in body.items() if key not in _STANDARD_USAGE}
    if details:
        extra["usage"] = details
    return Usage(_int_or_none(body.get("prompt_tokens")), _int_or_none(body.get("completion_tokens")))


def in_band_error(context: ProviderContext, error: object, model: str) -> ProviderError:
    """An error sent inside a 200 answer or stream, with the kind its code or type names."""
    fields = error if isinstance(error, dict) else {"message": str(error)}
    detail = str(fields.get("message") or fields)[:_DETAIL_LIMIT]
    code = str(fields.get("code") or fields.get("type") or "")
    if code == "insufficient_quota" or fields.get("type") == "insufficient_quota":
        return context.error(ErrorKind.QUOTA_EXHAUSTED, t("error.quota", detail=detail), t("suggest.billing"), model=model)
    if code in ("rate_limit_exceeded", "tokens", "requests"):
        return context.error(ErrorKind.RATE_LIMIT, t("error.rate_limit", detail=detail), t("suggest.rate_limit"), model=model)
    if code in ("invalid_api_key", "authentication_error", "permission_denied"):
        key_var = context.info.key_env or context.var("api_key")
        return context.error(ErrorKind.AUTHENTICATION, t("error.auth", status=200, detail=detail), t("suggest.check_key", var=key_var), model=model)
    if code in ("model_not_found", "model_decommissioned"):
        return context.error(ErrorKind.MODEL_NOT_FOUND, t("error.model_not_found", model=model), t("suggest.choose_listed_model", var=context.var("model")), model=model)
    if code == "context_length_exceeded":
        return context.error(ErrorKind.CONTEXT_LENGTH, t("error.context_length", detail=detail), t("suggest.shorten"), model=model)
    if code in ("content_filter", "content_policy_violation"):
        return context.error(ErrorKind.CONTENT_FILTER, t("error.content_filter", detail=detail), t("suggest.rephrase"), model=model)
    return context.error(ErrorKind.SERVER_ERROR, t("error.in_stream", detail=detail), t("suggest.retry_later"), model=model)


def _json_body(context: ProviderContext, response: httpx.Response, model: str | None) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "").split(";")[0] or "?"
        raise context.error(
            ErrorKind.MALFORMED_RESPONSE,
            t("error.not_json", status=response.status_code, content_type=kind),
            t("suggest.check_url", var=context.var("base_url")),
            status_code=response.status_code,
            model=model,
        ) from None


def parse_reply(context: ProviderContext, response: httpx.Response, model: str) -> ProviderReply:
    """Read a 200 chat-completion body; anything unusable is a MALFORMED_RESPONSE."""
    body = _json_body(context, response, model)
    choices = body.get("choices") if isinstance(body, dict) else None
    if choices is None and isinstance(body, dict) and body.get("error") is not None:
        raise in_band_error(context, body["error"], model)  # an error object sent with status 200
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise context.error(
            ErrorKind.MALFORMED_RESPONSE, t("error.malformed", detail="no choices"), t("suggest.retry_later"), model=model
        )
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish_reason = choice.get("finish_reason")
    text = message.get("content")
    refusal = message.get("refusal")
    if refusal or finish_reason == "content_filter":
        raise context.error(
            ErrorKind.CONTENT_FILTER,
            t("error.content_filter", detail=refusal or finish_reason),
            t("suggest.rephrase"),
            model=model,
        )
    if not isinstance(text, str) or not text:
        detail = "empty content" if finish_reason is None else f"empty content, finish_reason={finish_reason}"
        suggestion = t("suggest.raise_max_tokens") if finish_reason == "length" else t("suggest.retry_later")
        raise context.error(
            ErrorKind.MALFORMED_RESPONSE, t("error.malformed", detail=detail), suggestion, model=model
        )
    usage_body = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    usage = Usage(
        input_tokens=_int_or_none(usage_body.get("prompt_tokens")),
        output_tokens=_int_or_none(usage_body.get("completion_tokens")),
    )
    extra: dict[str, Any] = {key: value for key, value in body.items() if key not in _STANDARD_TOP}
    usage_details = {key: value for key, value in usage_body.items() if key not in _STANDARD_USAGE}
    if usage_details:
        extra["usage"] = usage_details
    return ProviderReply(
        text=text,
        model=body.get("model") if isinstance(body.get("model"), str) else model,
        finish_reason=finish_reason,
        usage=usage,
        extra=extra,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_fields(response: httpx.Response) -> tuple[str, str, str]:
    """(message, type, code) from an error body of any usual shape, or the raw text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "").split(";")[0]
        if "html" in kind:
            return t("error.html_body"), "", ""
        return response.text.strip()[:_DETAIL_LIMIT], "", ""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, str):
        return error, "", ""
    if not isinstance(error, dict):
        return str(error)[:_DETAIL_LIMIT], "", ""
    return str(error.get("message") or ""), str(error.get("type") or ""), str(error.get("code") or "")


_TRY_AGAIN = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+)", re.IGNORECASE)


def wait_in_message(message: str) -> float | None:
    """The wait a 429's text asks for ("Please try again in 9.5s", "… in 1m2.3s"), if it names one."""
    match = _TRY_AGAIN.search(message)
    return parse_duration(match.group(1)) if match else None


def error_from_response(
    context: ProviderContext, response: httpx.Response, model: str, dialect: Dialect
) -> ProviderError:
    """Map a non-200 answer to the ProviderError of its kind, with message and cure."""
    status = response.status_code
    detail, error_type, code = _error_fields(response)
    detail = detail[:_DETAIL_LIMIT] or f"HTTP {status}"
    lowered = detail.lower()
    key_var = context.info.key_env or context.var("api_key")

    def make(kind: ErrorKind, message: str, suggestion: str, retry_after: float | None = None) -> ProviderError:
        return context.error(kind, message, suggestion, status_code=status, retry_after=retry_after, model=model)

    if 300 <= status < 400:
        return context.redirect_error(response, model)
    if code == "insufficient_quota" or error_type == "insufficient_quota":
        return make(ErrorKind.QUOTA_EXHAUSTED, t("error.quota", detail=detail), dialect.billing_hint or t("suggest.billing"))
    if status == 429:
        wait = rate_limit_wait(response.headers)
        if wait is None:
            wait = wait_in_message(detail)
        suggestion = t("suggest.wait", seconds=f"{wait:.1f}") if wait is not None else t("suggest.rate_limit")
        return make(ErrorKind.RATE_LIMIT, t("error.rate_limit", detail=detail), suggestion, wait)
    if status in (401, 403):
        return make(ErrorKind.AUTHENTICATION, t("error.auth", status=status, detail=detail), t("suggest.check_key", var=key_var))
    if code == "model_decommissioned":
        return make(
            ErrorKind.MODEL_NOT_FOUND,
            t("error.model_retired", model=model),
            choose_model_suggestion(context, dialect),
        )
    if code == "model_not_found" or (status == 404 and "model" in lowered):
        return make(
            ErrorKind.MODEL_NOT_FOUND,
            t("error.model_not_found", model=model),
            choose_model_suggestion(context, dialect),
        )
    if status == 404:
        return make(
            ErrorKind.ENDPOINT_NOT_FOUND,
            t("error.endpoint_not_found", url=str(response.request.url)),
            t("suggest.check_url", var=context.var("base_url")),
        )
    if code == "context_length_exceeded" or status == 413 or "context length" in lowered or "maximum context" in lowered:
        return make(ErrorKind.CONTEXT_LENGTH, t("error.context_length", detail=detail), t("suggest.shorten"))
    if code in ("content_filter", "content_policy_violation"):
        return make(ErrorKind.CONTENT_FILTER, t("error.content_filter", detail=detail), t("suggest.rephrase"))
    if status >= 500 or status == 498:
        return make(ErrorKind.SERVER_ERROR, t("error.server", status=status, detail=detail), t("suggest.retry_later"))
    return make(ErrorKind.BAD_REQUEST, t("error.bad_request", status=status, detail=detail), t("suggest.bad_request"))


#: Model ids a "not listed" message shows at most.
LISTED_IDS_SHOWN = 5


def choose_model_suggestion(context: ProviderContext, dialect: Dialect) -> str:
    """How to pick another model: the provider's model page for its own API, the server's list otherwise."""
    if dialect.models_url and is_official(context.settings):
        return t("suggest.choose_model", var=context.var("model"), url=dialect.models_url)
    return t("suggest.choose_listed_model", var=context.var("model"))


def listed_ids(models: tuple[str, ...]) -> str:
    """The first ids a server listed, shortened, and how many more there are."""
    shown = ", ".join(f"'{model[:80]}'" for model in models[:LISTED_IDS_SHOWN])
    more = len(models) - LISTED_IDS_SHOWN
    return shown + (t("cli.and_more", count=more) if more > 0 else "")


async def available(context: ProviderContext, dialect: Dialect) -> Availability:
    """Check key and model with ``GET /models`` (costs no tokens on the provider's own API).

    A compatible server (any other base URL) that does not list the model
    may still serve it: many serve one model under whatever name they are
    sent. Only then is a one-token request sent to find out; if it answers,
    the provider is available, with a note naming the ids the server listed.
    """
    if not context.configured:
        return Availability.from_error(context.not_configured_error())
    model = context.settings.model
    try:
        response = await context.client.get(
            "/models", headers=_headers(context), timeout=min(AVAILABILITY_TIMEOUT, context.settings.timeout)
        )
        if response.status_code != 200:
            raise error_from_response(context, response, model, dialect)
        body = _json_body(context, response, model)
    except httpx.TransportError as exc:
        return Availability.from_error(context.transport_error(exc))
    except ProviderError as error:
        return Availability.from_error(error)
    data = body.get("data") if isinstance(body, dict) else None
    models = tuple(str(item["id"]) for item in data if isinstance(item, dict) and "id" in item) if isinstance(data, list) else ()
    if not models or model in models:
        return Availability(True, models=models)
    if not is_official(context.settings) and await _serves_unlisted(context, dialect, model):
        return Availability(True, t("available.model_not_listed", model=model, listed=listed_ids(models)), models=models)
    return Availability(
        False,
        t("error.model_not_listed", model=model, listed=listed_ids(models)),
        choose_model_suggestion(context, dialect),
        ErrorKind.MODEL_NOT_FOUND,
        models,
    )


async def _serves_unlisted(context: ProviderContext, dialect: Dialect, model: str) -> bool:
    """True when the server answers a one-token request for ``model``, which it did not list."""
    probe = CompletionRequest(messages=(Message("user", "hi"),), model=model, temperature=0.0, max_tokens=1)
    try:
        response = await context.client.post(
            "/chat/completions",
            json=payload(probe, dialect, context.settings),
            headers=_headers(context),
            timeout=min(AVAILABILITY_TIMEOUT, context.settings.timeout),
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


class ChatCompletionsPlugin:
    """A complete provider plugin for a server that speaks chat completions.

    A plugin package needs only its settings class, its :class:`ProviderInfo`
    and its :class:`Dialect`, and points its entry point at an instance::

        plugin = ChatCompletionsPlugin(ProviderInfo(...), lambda: Dialect(...))

    :param info: what ``provider_info`` returns.
    :param dialect: builds the dialect per call (its hints follow the language).
    """

    def __init__(self, info: ProviderInfo, dialect: Callable[[], Dialect]) -> None:
        self.info = info
        self.dialect = dialect

    @hookimpl
    def provider_info(self) -> ProviderInfo:
        """The provider this plugin brings."""
        return self.info

    @hookimpl
    async def provider_available(self, provider: str, context: ProviderContext) -> Availability:
        """Check the key and the model with ``GET /models`` (no tokens spent)."""
        return await available(context, self.dialect())

    @hookimpl
    async def provider_complete(
        self, provider: str, request: CompletionRequest, context: ProviderContext
    ) -> ProviderReply:
        """One non-streaming chat completion."""
        return await complete(context, request, self.dialect())

    @hookimpl
    async def provider_stream(
        self, provider: str, request: CompletionRequest, context: ProviderContext
    ) -> AsyncIterator[StreamChunk]:
        """One streaming chat completion, chunk by chunk."""
        async for chunk in stream(context, request, self.dialect()):
            yield chunk
