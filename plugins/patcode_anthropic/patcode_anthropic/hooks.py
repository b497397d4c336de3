"""The plugin's hooks (the entry point ``anthropic = "patcode_anthropic.hooks"``).

``provider_complete`` and ``provider_stream`` send ``POST /v1/messages``
(:mod:`patcode_anthropic.wire`), without and with ``"stream": true``;
``provider_available`` reads ``GET /v1/models``. Errors become ProviderErrors
in :mod:`patcode_anthropic.errors`; the plugin never retries or waits itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from patcode_anthropic import availability
from patcode_anthropic.errors import RATE_LIMIT_HEADERS, error_from_response
from patcode_anthropic.messages import MESSAGES
from patcode_anthropic.models import PRICES
from patcode_anthropic.settings import AnthropicSettings
from patcode_anthropic.stream import read_stream
from patcode_anthropic.wire import MESSAGES_PATH, malformed, message_body, parse_message, request_headers
from patcode_core.plugin import (
    Availability,
    CompletionRequest,
    ProviderContext,
    ProviderInfo,
    ProviderReply,
    StreamChunk,
    hookimpl,
    sse_events,
)

NAME = "anthropic"
#: After groq (10), ollama (20) and openai (30); before the local model (1000).
PRIORITY = 40


@hookimpl
def provider_info() -> ProviderInfo:
    """Anthropic: Claude through the Messages API, with its own rate-limit headers and prices."""
    return ProviderInfo(
        name=NAME,
        display_name="Anthropic",
        settings_class=AnthropicSettings,
        key_env="ANTHROPIC_API_KEY",
        priority=PRIORITY,
        description="Anthropic Claude (API Messages)",
        prices=PRICES,
        rate_limit_headers=RATE_LIMIT_HEADERS,
    )


@hookimpl
async def provider_available(provider: str, context: ProviderContext) -> Availability:
    """Key and model, from ``GET /v1/models`` (no tokens spent)."""
    return await availability.check(context)


def _json(context: ProviderContext, response: httpx.Response, model: str) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        content_type = response.headers.get("content-type", "").split(";")[0] or "?"
        raise malformed(context, MESSAGES.t("not_json", status=response.status_code, content_type=content_type), model) from None


@hookimpl
async def provider_complete(provider: str, request: CompletionRequest, context: ProviderContext) -> ProviderReply:
    """One message, whole."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    try:
        response = await context.client.post(
            MESSAGES_PATH, json=message_body(request, context.settings), headers=request_headers(context.settings)
        )
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None
    if response.status_code != 200:
        raise error_from_response(context, response, request.model)
    return parse_message(context, _json(context, response, request.model), request.model)


@hookimpl
async def provider_stream(provider: str, request: CompletionRequest, context: ProviderContext) -> AsyncIterator[StreamChunk]:
    """One message, streamed (``"stream": true``): its text as it is written, then the ``done`` chunk."""
    if not context.configured:
        raise context.not_configured_error(request.model)
    body = message_body(request, context.settings, stream=True)
    try:
        async with context.client.stream("POST", MESSAGES_PATH, json=body, headers=request_headers(context.settings)) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_response(context, response, request.model)
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignored "stream": its whole answer is one chunk.
                await response.aread()
                reply = parse_message(context, _json(context, response, request.model), request.model)
                yield StreamChunk(reply.text, reply.finish_reason, reply.usage, reply.model, done=True, extra=reply.extra)
                return
            events = sse_events(response.aiter_lines())
            async for chunk in read_stream(context, events, request.model, response.headers.get("request-id")):
                yield chunk
    except httpx.TransportError as exc:
        raise context.transport_error(exc, model=request.model) from None
