"""The chat-completions-compatible endpoints: chat completions (plain and streamed), models, health, readiness, metrics.

A streamed answer's headers leave only when its first token has arrived, so
every failure before it (a provider down, rate-limited, silent past its
first-token limit, a hedge lost) is handled by the manager's fallback and
never seen by the client, and a call that fails everywhere gets a real HTTP
error status. Once text has been sent, the provider that sent it is the only
one the client will hear: if its stream breaks, the gateway does not
restart the answer elsewhere (that would join two providers' text) but ends
the stream with an error event in the chat-completions API's shape and no ``[DONE]``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from patcode_core.gateway.api_errors import ApiError, from_exception
from patcode_core.gateway.chat_request import ChatCall, Route, parse_chat, parse_json
from patcode_core.gateway.chat_response import ChunkWriter, answered_by, completion_body
from patcode_core.gateway.metrics import CONTENT_TYPE
from patcode_core.i18n import t
from patcode_core.routing.breaker import CircuitState
from patcode_core.types import CompletionResult, StreamRestarted, StreamStarted, TextDelta

if TYPE_CHECKING:
    from patcode_core.gateway.app import Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def header_safe(value: str, limit: int = 200) -> str:
    """A provider's string made fit for a response header: printable ASCII only, bounded."""
    return "".join(char if " " <= char <= "~" else "?" for char in value[:limit])


def answer_headers(provider: str, model: str, fallback: bool, cached: bool = False, cost: float | None = None) -> dict[str, str]:
    """Who answered and how: ``X-PatCode-Provider``, ``-Model``, ``-Fallback`` (and ``-Cached``, ``-Cost-USD``)."""
    headers = {
        "X-PatCode-Provider": header_safe(provider),
        "X-PatCode-Model": header_safe(model),
        "X-PatCode-Fallback": "true" if fallback else "false",
    }
    if cached:
        headers["X-PatCode-Cached"] = "true"
    if cost is not None and math.isfinite(cost):
        headers["X-PatCode-Cost-USD"] = f"{cost:.8f}"
    return headers


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, t("gateway.body_too_large", limit=limit), code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, t("gateway.body_too_large", limit=limit), code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(error: ApiError) -> JSONResponse:
    """An error in the chat-completions API's shape."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    gateway = _gateway(request)
    call = parse_chat(parse_json(await read_body(request, gateway.max_body)))
    route = gateway.resolve(call.route)
    manager = gateway.manager
    options: dict[str, Any] = {
        "provider": route.provider, "model": route.model, "temperature": call.temperature, "max_tokens": call.max_tokens,
    }
    if call.stream:
        return await _streamed(gateway, call, options)
    result = await manager.complete(call.messages, **options)
    fallback = any(failure.provider != result.provider for failure in result.failures)
    return JSONResponse(
        completion_body(result), headers=answer_headers(result.provider, result.model, fallback, result.cached, result.cost)
    )


async def _streamed(gateway: Gateway, call: ChatCall, options: dict[str, Any]) -> Response:
    """Wait for the first token (failures before it fall back unseen), then stream."""
    events = gateway.manager.stream(call.messages, **options)
    try:
        opening = await anext(events)
        while not isinstance(opening, StreamStarted | CompletionResult):
            opening = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    writer = ChunkWriter(answered_by(opening.provider, opening.model), call.include_usage)
    fallback = opening.fallback if isinstance(opening, StreamStarted) else bool(opening.failures)
    headers = answer_headers(opening.provider, opening.model, fallback, opening.cached)
    headers.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return StreamingResponse(_sse(events, writer, opening), media_type="text/event-stream", headers=headers)


async def _sse(events: AsyncIterator[Any], writer: ChunkWriter, opening: StreamStarted | CompletionResult) -> AsyncIterator[bytes]:
    async with aclosing(events):  # a client that leaves closes the provider's stream too
        yield writer.delta("", role=True)
        if isinstance(opening, CompletionResult):
            yield writer.delta(opening.text) + writer.end(opening)
            return
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    if event.text:
                        yield writer.delta(event.text)
                elif isinstance(event, StreamRestarted):
                    reason = t("gateway.stream_broke", provider=event.from_provider, reason=event.reason)
                    yield writer.error(ApiError(502, reason, "server_error", "stream_interrupted").body())
                    return
                elif isinstance(event, CompletionResult):
                    yield writer.end(event)
                    return
        except Exception as exc:  # the stream broke for good: an error event, never a silent end
            yield writer.error(from_exception(exc).body())


async def models(request: Request) -> Response:
    """``GET /v1/models``: ``auto``, every provider, and each provider/model it can route to."""
    gateway = _gateway(request)
    created = int(gateway.started)
    data = [{"id": "auto", "object": "model", "created": created, "owned_by": "patcode"}]
    for provider, names in (await gateway.catalog.models()).items():
        data.append({"id": provider, "object": "model", "created": created, "owned_by": provider})
        data.extend({"id": f"{provider}/{name}", "object": "model", "created": created, "owned_by": provider} for name in names)
    return JSONResponse({"object": "list", "data": data})


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """``GET /readyz``: 200 when some provider could take a request now (loaded, key set, a circuit not open)."""
    manager = _gateway(request).manager
    states = {}
    for name in manager.installed:
        if not manager.is_configured(name):
            states[name] = "not_configured"
        elif any(status.state is CircuitState.OPEN and status.model == manager.model_of(name)
                 for status in manager.breakers.status(name)):
            states[name] = "circuit_open"
        else:
            states[name] = "ready"
    ready = "ready" in states.values()
    return JSONResponse({"status": "ready" if ready else "unavailable", "providers": states}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus' text format."""
    return Response(_gateway(request).metrics.render(), media_type=CONTENT_TYPE)


__all__ = ["Route", "chat_completions", "error_response", "healthz", "metrics", "models", "readyz"]
