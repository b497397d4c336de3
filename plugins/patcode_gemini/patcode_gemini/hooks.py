"""The ``gemini`` provider's hooks (the entry point): describe, check, complete, stream.

Every request sends the key in the ``x-goog-api-key`` header
(https://ai.google.dev/api#authentication); the URL never holds it, so no
log line, error message or redirect can carry it. The plugin neither retries
nor waits: the core does, from the ``ErrorKind`` and ``retry_after`` of each
error (:mod:`patcode_gemini.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from patcode_core.plugin import (
    Availability,
    CompletionRequest,
    ErrorKind,
    ProviderContext,
    ProviderError,
    ProviderInfo,
    ProviderReply,
    StreamChunk,
    hookimpl,
)
from patcode_gemini.errors import error_from_response, json_body, malformed
from patcode_gemini.messages import MESSAGES
from patcode_gemini.prices import prices
from patcode_gemini.settings import KEY_ENV, GeminiSettings
from patcode_gemini.stream import read_array, read_sse
from patcode_gemini.wire import parse_reply, path, request_body

NAME = "gemini"
#: After groq (10), ollama (20) and openai (30); before local (1000).
PRIORITY = 40
#: How long the status check may take, at most.
AVAILABILITY_TIMEOUT = 5.0


@hookimpl
def provider_info() -> ProviderInfo:
    """Gemini: a key from Google AI Studio, prices by model."""
    return ProviderInfo(
        name=NAME,
        display_name="Google Gemini",
        settings_class=GeminiSettings,
        key_env=KEY_ENV,
        priority=PRIORITY,
        description=MESSAGES.t("description"),
        prices=prices(),
    )


def _headers(context: ProviderContext) -> dict[str, str]:
    """The key, in its header (the one place it is read in clear)."""
    key = context.settings.api_key_value()
    return {"x-goog-api-key": key} if key else {}


@hookimpl
async def provider_available(provider: str, context: ProviderContext) -> Availability:
    """``GET /v1beta/models/{model}``: the key works and the model exists and generates (no tokens spent)."""
    if not context.configured:
        return Availability.from_error(context.not_configured_error())
    model = context.settings.model
    try:
        response = await context.client.get(
            path(context.settings, model), headers=_headers(context), timeout=min(AVAILABILITY_TIMEOUT, context.settings.timeout)
        )
        if response.status_code != 200:
            raise error_from_response(context, response, model)
        body = json_body(context, response, model)
    except httpx.TransportError as exc:
        return Availability.from_error(context.transport_error(exc, model=model))
    except ProviderError as error:
        return Availability.from_error(error)
    if not isinstance(body, dict):
        return Availability.from_error(malformed(context, "not a Model object", model))
    name = str(body.get("name") or model).removeprefix("models/")
    methods = body.get("supportedGenerationMethods")
    if isinstance(methods, list) and "generateContent" not in methods:
        return Availability(
            False,
            MESSAGES.t("model_cannot_generate", model=name, methods=", ".join(str(method) for method in methods) or "-"),
            MESSAGES.t("choose_model", var=context.var("model")),
            ErrorKind.MODEL_NOT_FOUND,
            (name,),
        )
    return Availability(True, models=(name,))


@hookimpl
async def provider_complete(provider: str, request: CompletionRequest, context: ProviderContext) -> ProviderReply:
    """One ``generateContent`` call: the whole answer."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    try:
        response = await context.client.post(
            path(context.settings, request.model, "generateContent"), json=request_body(request), headers=_headers(context)
        )
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None
    if response.status_code != 200:
        raise error_from_response(context, response, request.model)
    return parse_reply(context, json_body(context, response, request.model), request)


@hookimpl
async def provider_stream(provider: str, request: CompletionRequest, context: ProviderContext) -> AsyncIterator[StreamChunk]:
    """``streamGenerateContent?alt=sse``: the answer as it is written, ``done`` at its ``finishReason``."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    try:
        async with context.client.stream(
            "POST",
            path(context.settings, request.model, "streamGenerateContent"),
            params={"alt": "sse"},
            json=request_body(request),
            headers=_headers(context),
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_response(context, response, request.model)
            if response.headers.get("content-type", "").startswith("application/json"):
                await response.aread()
                for chunk in read_array(context, json_body(context, response, request.model), request.model):
                    yield chunk
                return
            async for chunk in read_sse(context, response.aiter_lines(), request.model):
                yield chunk
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None
