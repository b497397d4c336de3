"""Ollama for PatCode: the native API of a local (or remote) Ollama server.

Completions use ``POST /api/chat`` with ``stream: false``; availability and
the installed models come from ``GET /api/tags``. Settings: ``OLLAMA_BASE_URL``,
``OLLAMA_MODEL``, ``OLLAMA_TIMEOUT``, ``OLLAMA_RPM``. No key is needed; an
``OLLAMA_API_KEY``, when set (ollama.com, or a proxy with authentication), is
sent as a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from patcode_core.plugin import (
    ANY_MODEL,
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
    StreamChunk,
    Usage,
    hookimpl,
    rate_limit_wait,
)
from patcode_core.plugin import (
    core_message as core_t,
)

NAME = "ollama"
DEFAULT_MODEL = "qwen2.5-coder:1.5b"
TAGS_TIMEOUT = 5.0
#: Extra seconds for the first token of the first request in a process (the server may be loading the model).
COLD_START = 30.0
_DETAIL_LIMIT = 300
#: Unreadable lines a stream may skip (each with a warning) before it counts as broken.
MAX_SKIPPED_LINES = 3
_EXTRA_FIELDS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration", "created_at")

MESSAGES = Catalogue(
    es={
        "serve": "Asegúrate que Ollama esté corriendo: ollama serve",
        "pull": "Descarga el modelo: ollama pull {model}",
        "not_pulled": "el modelo '{model}' no está descargado en Ollama",
        "error": "Ollama respondió HTTP {status}: {detail}",
        "auth": "Ollama (o un proxy delante de él) rechazó la petición (HTTP {status}): {detail}",
        "check_auth": "Revisa OLLAMA_BASE_URL y las credenciales del proxy o de ollama.com",
        "openai_compatible": "{url} no tiene la API de Ollama (/api/...), pero parece un servidor compatible con OpenAI: usa el plugin openai con OPENAI_BASE_URL={v1}",
    },
    en={
        "serve": "Make sure Ollama is running: ollama serve",
        "pull": "Pull the model: ollama pull {model}",
        "not_pulled": "model '{model}' is not pulled in Ollama",
        "error": "Ollama answered HTTP {status}: {detail}",
        "auth": "Ollama (or a proxy in front of it) refused the request (HTTP {status}): {detail}",
        "check_auth": "Check OLLAMA_BASE_URL and the credentials of the proxy or of ollama.com",
        "openai_compatible": "{url} has no Ollama API (/api/...), but it looks like an OpenAI-compatible server: use the openai plugin with OPENAI_BASE_URL={v1}",
    },
)


class OllamaSettings(ProviderSettings):
    """``OLLAMA_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="OLLAMA_")

    model: str = DEFAULT_MODEL
    base_url: str = "http://localhost:11434"


@hookimpl
def provider_info() -> ProviderInfo:
    """Ollama: local models, no key, costs nothing."""
    return ProviderInfo(
        name=NAME,
        display_name="Ollama",
        settings_class=OllamaSettings,
        key_env=None,
        priority=20,
        # A model that is not in memory yet loads before its first token: seconds, for a big one.
        cold_start=COLD_START,
        description="Ollama local (API nativa /api/chat)",
        # A local server costs nothing; for ollama.com set LLM_PRICES=ollama/*=<in>:<out>.
        prices={ANY_MODEL: Price(0.0, 0.0, "local")},
    )


def _same_model(wanted: str, installed: str) -> bool:
    """``qwen2.5-coder`` matches ``qwen2.5-coder:latest``; tags otherwise must agree."""
    if ":" not in wanted:
        wanted += ":latest"
    if ":" not in installed:
        installed += ":latest"
    return wanted == installed


def _auth_headers(context: ProviderContext) -> dict[str, str]:
    """``Authorization`` for ollama.com or a proxy that asks for a key; none for a local server."""
    key = context.settings.api_key_value()
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _with_hint(context: ProviderContext, error: ProviderError) -> ProviderError:
    """A 404 from a server that speaks chat completions instead: say so, and which plugin to use.

    Only an ``ENDPOINT_NOT_FOUND`` costs one quick ``GET /v1/models`` to find out.
    """
    if error.kind is not ErrorKind.ENDPOINT_NOT_FOUND:
        return error
    base = context.settings.base_url.rstrip("/")
    v1 = base if base.endswith("/v1") else f"{base}/v1"
    try:
        response = await context.client.get(f"{v1}/models", headers=_auth_headers(context), timeout=min(TAGS_TIMEOUT, context.settings.timeout))
        listed = response.status_code == 200 and isinstance(response.json().get("data"), list)
    except (httpx.TransportError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        listed = False
    if not listed:
        return error
    hinted = context.error(
        error.kind, error.message, MESSAGES.t("openai_compatible", url=base, v1=v1), status_code=error.status_code, model=error.model
    )
    return hinted


def _unreachable(context: ProviderContext, exc: httpx.TransportError, model: str | None = None) -> ProviderError:
    return context.transport_error(exc, unreachable_suggestion=MESSAGES.t("serve"), model=model)


@hookimpl
async def provider_available(provider: str, context: ProviderContext) -> Availability:
    """Is the server up (``GET /api/tags``) and the configured model pulled?"""
    model = context.settings.model
    try:
        response = await context.client.get(
            "/api/tags", headers=_auth_headers(context), timeout=min(TAGS_TIMEOUT, context.settings.timeout)
        )
    except httpx.TransportError as exc:
        return Availability.from_error(_unreachable(context, exc))
    if response.status_code != 200:
        return Availability.from_error(await _with_hint(context, _http_error(context, response, model)))
    try:
        body = response.json()
        names = tuple(str(item.get("name") or item.get("model")) for item in body.get("models") or [])
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
        return Availability(False, core_t("error.malformed", detail="/api/tags"), "", ErrorKind.MALFORMED_RESPONSE)
    if not any(_same_model(model, name) for name in names):
        return Availability(
            False, MESSAGES.t("not_pulled", model=model), MESSAGES.t("pull", model=model), ErrorKind.MODEL_NOT_FOUND, names
        )
    return Availability(True, models=names)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        if "html" in response.headers.get("content-type", ""):
            return core_t("error.html_body")
        return response.text.strip()[:_DETAIL_LIMIT] or f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:_DETAIL_LIMIT]
    return str(body)[:_DETAIL_LIMIT]


def _http_error(context: ProviderContext, response: httpx.Response, model: str) -> ProviderError:
    status = response.status_code
    detail = _error_text(response)
    lowered = detail.lower()

    def make(kind: ErrorKind, message: str, suggestion: str, retry_after: float | None = None) -> ProviderError:
        return context.error(kind, message, suggestion, status_code=status, retry_after=retry_after, model=model)

    if 300 <= status < 400:
        return context.redirect_error(response, model)
    if status in (401, 403):
        return make(ErrorKind.AUTHENTICATION, MESSAGES.t("auth", status=status, detail=detail), MESSAGES.t("check_auth"))
    if status == 404 and "model" in lowered:
        return make(ErrorKind.MODEL_NOT_FOUND, MESSAGES.t("not_pulled", model=model), MESSAGES.t("pull", model=model))
    if status == 404:
        return make(
            ErrorKind.ENDPOINT_NOT_FOUND,
            core_t("error.endpoint_not_found", url=str(response.request.url)),
            core_t("suggest.check_url", var=context.var("base_url")),
        )
    if "context" in lowered and ("length" in lowered or "exceed" in lowered):
        return make(ErrorKind.CONTEXT_LENGTH, core_t("error.context_length", detail=detail), core_t("suggest.shorten"))
    if status == 429:
        wait = rate_limit_wait(response.headers)
        suggestion = core_t("suggest.wait", seconds=f"{wait:.1f}") if wait is not None else core_t("suggest.rate_limit")
        return make(ErrorKind.RATE_LIMIT, core_t("error.rate_limit", detail=detail), suggestion, wait)
    if status >= 500:
        return make(ErrorKind.SERVER_ERROR, MESSAGES.t("error", status=status, detail=detail), core_t("suggest.retry_later"))
    return make(ErrorKind.BAD_REQUEST, MESSAGES.t("error", status=status, detail=detail), core_t("suggest.bad_request"))


def chat_payload(request: CompletionRequest, stream: bool = False) -> dict[str, Any]:
    """The JSON body for ``POST /api/chat``."""
    return {
        "model": request.model,
        "messages": [message.as_dict() for message in request.messages],
        "stream": stream,
        "options": {"temperature": request.temperature, "num_predict": request.max_tokens},
    }


def _malformed(context: ProviderContext, detail: str, model: str) -> ProviderError:
    return context.error(
        ErrorKind.MALFORMED_RESPONSE, core_t("error.malformed", detail=detail), core_t("suggest.retry_later"), model=model
    )


@hookimpl
async def provider_complete(provider: str, request: CompletionRequest, context: ProviderContext) -> ProviderReply:
    """One ``/api/chat`` call with ``stream: false``."""
    try:
        response = await context.client.post("/api/chat", json=chat_payload(request), headers=_auth_headers(context))
    except httpx.TransportError as exc:
        raise _unreachable(context, exc, request.model) from None
    if response.status_code != 200:
        raise await _with_hint(context, _http_error(context, response, request.model))
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _malformed(context, "not JSON", request.model) from None
    if not isinstance(body, dict):
        raise _malformed(context, "not an object", request.model)
    if isinstance(body.get("error"), str):
        raise context.error(
            ErrorKind.SERVER_ERROR,
            MESSAGES.t("error", status=response.status_code, detail=body["error"][:_DETAIL_LIMIT]),
            core_t("suggest.retry_later"),
            model=request.model,
        )
    message = body.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if body.get("done") is not True:
        raise _malformed(context, "done is not true", request.model)
    if not isinstance(text, str) or not text:
        raise _malformed(context, "empty message", request.model)
    return ProviderReply(
        text=text,
        model=body.get("model") if isinstance(body.get("model"), str) else request.model,
        finish_reason=body.get("done_reason") or "stop",
        usage=Usage(
            input_tokens=body.get("prompt_eval_count") if isinstance(body.get("prompt_eval_count"), int) else None,
            output_tokens=body.get("eval_count") if isinstance(body.get("eval_count"), int) else None,
        ),
        extra={field: body[field] for field in _EXTRA_FIELDS if field in body},
    )


def _in_band_error(context: ProviderContext, detail: str, model: str) -> ProviderError:
    """``{"error": ...}`` inside a 200 stream: a model that is missing, or the server failing mid-answer."""
    if "not found" in detail.lower() and "model" in detail.lower():
        return context.error(ErrorKind.MODEL_NOT_FOUND, MESSAGES.t("not_pulled", model=model), MESSAGES.t("pull", model=model), model=model)
    return context.error(ErrorKind.SERVER_ERROR, core_t("error.in_stream", detail=detail[:_DETAIL_LIMIT]), core_t("suggest.retry_later"), model=model)


def _usage(line: dict[str, Any]) -> Usage:
    prompt, output = line.get("prompt_eval_count"), line.get("eval_count")
    return Usage(prompt if isinstance(prompt, int) else None, output if isinstance(output, int) else None)


@hookimpl
async def provider_stream(provider: str, request: CompletionRequest, context: ProviderContext) -> AsyncIterator[StreamChunk]:
    """``/api/chat`` with ``stream: true``: one JSON object per line, the last with ``"done": true`` and the counts."""
    try:
        async with context.client.stream(
            "POST", "/api/chat", json=chat_payload(request, stream=True), headers=_auth_headers(context)
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise await _with_hint(context, _http_error(context, response, request.model))
            skipped = 0
            async for raw in response.aiter_lines():
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError:
                    line = None
                if not isinstance(line, dict):
                    skipped += 1
                    if skipped > MAX_SKIPPED_LINES:
                        raise _malformed(context, f"{skipped} unreadable stream lines", request.model)
                    yield StreamChunk(skipped=raw[:80])
                    continue
                if line.get("error") is not None:
                    raise _in_band_error(context, str(line["error"]), request.model)
                message = line.get("message")
                text = message.get("content") if isinstance(message, dict) else ""
                model = line.get("model") if isinstance(line.get("model"), str) else None
                if line.get("done") is True:
                    yield StreamChunk(
                        text=text if isinstance(text, str) else "",
                        finish_reason=line.get("done_reason") or "stop",
                        usage=_usage(line),
                        model=model,
                        done=True,
                        extra={field: line[field] for field in _EXTRA_FIELDS if field in line},
                    )
                    return
                yield StreamChunk(text=text if isinstance(text, str) else "", model=model)
    except httpx.TransportError as exc:
        raise _unreachable(context, exc, request.model) from None
