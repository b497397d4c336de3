"""Acme, an invented provider for the testing kit's own tests: a correct plugin, and the same plugin broken on purpose.

Its API: ``POST /v1/generate`` with the key in ``x-acme-key``; an answer
``{"model", "output", "stop": "end"|"max_tokens", "tokens": {"in", "out"}}``;
an error ``{"error": {"type", "message"}}``; streamed, server-sent events
``{"delta": "..."}`` and, as the end marker, ``{"stop": ..., "tokens": ...}``.

``Acme(breaks={...})`` makes it wrong in the ways named in :data:`BREAKS`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from patcode_core.plugin import (
    FINISH_LENGTH,
    FINISH_STOP,
    Availability,
    Catalogue,
    CompletionRequest,
    ErrorKind,
    Price,
    ProviderContext,
    ProviderError,
    ProviderInfo,
    ProviderReply,
    ProviderSettings,
    SettingsConfigDict,
    StreamChunk,
    Usage,
    hookimpl,
    retry_after_seconds,
    sse_data,
)
from patcode_core.testing import ProviderDescription, StreamCase, WireCase

BREAKS = {
    "429_is_server_error": "maps a 429 to server_error",
    "leaks_key": "puts the key in the authentication error",
    "cut_stream_is_whole": "ends a stream cut before its end marker with done=True",
    "untranslated_finish": "returns Acme's own finish word ('end')",
    "ignores_retry_after": "drops the wait a 429 asks for",
    "retries_itself": "sends a failed request again itself",
    "wrong_usage": "swaps input and output tokens",
    "error_as_answer": "returns a 500's body as an answer",
}

MESSAGES = Catalogue(
    es={"refused": "Acme rechazó la petición (HTTP {status}): {detail}", "check_key": "Revisa ACME_API_KEY"},
    en={"refused": "Acme refused the request (HTTP {status}): {detail}", "check_key": "Check ACME_API_KEY"},
)

_KINDS = {
    "auth": ErrorKind.AUTHENTICATION,
    "unknown_model": ErrorKind.MODEL_NOT_FOUND,
    "rate": ErrorKind.RATE_LIMIT,
    "too_long": ErrorKind.CONTEXT_LENGTH,
    "blocked": ErrorKind.CONTENT_FILTER,
    "overloaded": ErrorKind.SERVER_ERROR,
}
_FINISH = {"end": FINISH_STOP, "max_tokens": FINISH_LENGTH}


class AcmeSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="ACME_")
    model: str = "acme-1"
    base_url: str = "https://api.acme.test"


class Acme:
    """The Acme plugin; ``breaks`` names what to get wrong (keys of :data:`BREAKS`)."""

    def __init__(self, breaks: set[str] | frozenset[str] = frozenset()) -> None:
        unknown = set(breaks) - set(BREAKS)
        if unknown:
            raise ValueError(f"unknown breaks: {sorted(unknown)}")
        self.breaks = frozenset(breaks)

    @hookimpl
    def provider_info(self) -> ProviderInfo:
        return ProviderInfo(
            name="acme", settings_class=AcmeSettings, key_env="ACME_API_KEY", joins_default_order=False,
            prices={"acme-1*": Price(1.0, 2.0, "2026-01-01")},
        )

    @hookimpl
    async def provider_available(self, provider: str, context: ProviderContext) -> Availability:
        response = await context.client.get("/v1/models", headers=self._headers(context))
        if response.status_code != 200:
            error = self._error(context, response, context.settings.model)
            return Availability.from_error(error)
        return Availability(True)

    @hookimpl
    async def provider_complete(self, provider: str, request: CompletionRequest, context: ProviderContext) -> ProviderReply:
        response = await self._post(context, request, stream=False)
        if response.status_code >= 500 and "retries_itself" in self.breaks:
            response = await self._post(context, request, stream=False)
        if response.status_code == 500 and "error_as_answer" in self.breaks:
            return ProviderReply(text=response.text, finish_reason=FINISH_STOP)
        if response.status_code != 200:
            raise self._error(context, response, request.model)
        body = response.json()
        return ProviderReply(
            text=body["output"], model=body.get("model"), finish_reason=self._finish(body.get("stop")), usage=self._usage(body),
        )

    @hookimpl
    async def provider_stream(
        self, provider: str, request: CompletionRequest, context: ProviderContext
    ) -> AsyncIterator[StreamChunk]:
        payload = self._payload(request, stream=True)
        async with context.client.stream("POST", "/v1/generate", json=payload, headers=self._headers(context)) as response:
            if response.status_code != 200:
                await response.aread()
                raise self._error(context, response, request.model)
            async for data in sse_data(response.aiter_lines()):
                event = json.loads(data)
                if "stop" in event:
                    yield StreamChunk(finish_reason=self._finish(event["stop"]), usage=self._usage(event), done=True)
                    return
                yield StreamChunk(text=event.get("delta", ""))
        if "cut_stream_is_whole" in self.breaks:
            yield StreamChunk(finish_reason=FINISH_STOP, done=True)

    # -- the wire --------------------------------------------------------

    @staticmethod
    def _payload(request: CompletionRequest, stream: bool) -> dict[str, object]:
        return {
            "model": request.model, "messages": [m.as_dict() for m in request.messages],
            "max_tokens": request.max_tokens, "temperature": request.temperature, "stream": stream,
        }

    @staticmethod
    def _headers(context: ProviderContext) -> dict[str, str]:
        return {"x-acme-key": context.settings.api_key_value() or ""}

    async def _post(self, context: ProviderContext, request: CompletionRequest, stream: bool) -> httpx.Response:
        return await context.client.post("/v1/generate", json=self._payload(request, stream), headers=self._headers(context))

    def _finish(self, word: str | None) -> str | None:
        if "untranslated_finish" in self.breaks:
            return word
        return _FINISH.get(word or "", FINISH_STOP)

    def _usage(self, body: dict) -> Usage:
        tokens = body.get("tokens") or {}
        usage = Usage(tokens.get("in"), tokens.get("out"))
        return Usage(usage.output_tokens, usage.input_tokens) if "wrong_usage" in self.breaks else usage

    def _error(self, context: ProviderContext, response: httpx.Response, model: str) -> ProviderError:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        kind = _KINDS.get(error.get("type", ""), ErrorKind.SERVER_ERROR if response.status_code >= 500 else ErrorKind.BAD_REQUEST)
        if kind is ErrorKind.RATE_LIMIT and "429_is_server_error" in self.breaks:
            kind = ErrorKind.SERVER_ERROR
        wait = None if "ignores_retry_after" in self.breaks else retry_after_seconds(response.headers)
        detail = str(error.get("message", response.text))[:200]
        message = MESSAGES.t("refused", status=response.status_code, detail=detail)
        if kind is ErrorKind.AUTHENTICATION and "leaks_key" in self.breaks:
            return ProviderError("acme", kind, f"{message} (key {context.settings.api_key_value()})", MESSAGES.t("check_key"))
        suggestion = MESSAGES.t("check_key") if kind is ErrorKind.AUTHENTICATION else ""
        return context.error(kind, message, suggestion, status_code=response.status_code, retry_after=wait, model=model)


def _error(status: int, type_: str, message: str, **headers: str) -> WireCase:
    return WireCase(status, json={"error": {"type": type_, "message": message}}, headers=headers)


def description(plugin: object, **changes: object) -> ProviderDescription:
    """Acme's description for the conformance suite (``changes`` replace fields)."""
    fields: dict[str, object] = dict(
        plugin=plugin,
        path="/v1/generate",
        success=WireCase(json={"model": "acme-1-2026", "output": "Hola desde Acme.", "stop": "end", "tokens": {"in": 12, "out": 5}}),
        expected_text="Hola desde Acme.",
        expected_usage=Usage(12, 5),
        cost=(12 * 1.0 + 5 * 2.0) / 1_000_000,
        errors={
            ErrorKind.AUTHENTICATION: _error(401, "auth", "bad key"),
            ErrorKind.MODEL_NOT_FOUND: _error(404, "unknown_model", "no such model"),
            ErrorKind.RATE_LIMIT: _error(429, "rate", "slow down", **{"Retry-After": "3"}),
            ErrorKind.CONTEXT_LENGTH: _error(413, "too_long", "too many tokens"),
            ErrorKind.CONTENT_FILTER: _error(400, "blocked", "refused by policy"),
            ErrorKind.SERVER_ERROR: [_error(500, "overloaded", "try later"), _error(503, "overloaded", "busy")],
        },
        stream=StreamCase(
            events=[{"delta": "Hola"}, {"delta": " desde"}, {"delta": " Acme."}, {"stop": "end", "tokens": {"in": 12, "out": 3}}],
            cut_after=2,
            usage=Usage(12, 3),
        ),
    )
    fields.update(changes)
    return ProviderDescription(**fields)  # type: ignore[arg-type]
