"""Groq's wire format, request and every error it sends, with respx (no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from groq_payloads import GROQ_SUCCESS, LAST, chunk, groq_error

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

BASE = "https://api.groq.com/openai/v1"
KEY = "gsk_unit_test_key_0123456789abcdef"





@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "groq")
    # These tests read one answer each; retries have their own tests in tests/test_resilience*.py.
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    return LLMManager(host=PluginHost.discover(), env_file=None)


def test_host_lists_groq_as_installed() -> None:
    assert "groq" in PluginHost.discover().providers


@respx.mock
async def test_success_request_and_extra_usage(manager: LLMManager) -> None:
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=GROQ_SUCCESS))
    result = await manager.complete("Explain fast LLMs", fallback=False)
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content) == {
        "model": "openai/gpt-oss-120b",
        "messages": [{"role": "user", "content": "Explain fast LLMs"}],
        "temperature": 0.7,
        "max_completion_tokens": 1024,
        "stream": False,
    }
    assert result.text.startswith("Fast language models")
    assert (result.provider, result.model, result.finish_reason) == ("groq", "openai/gpt-oss-120b", "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (18, 556)
    assert result.extra["usage"]["queue_time"] == 0.037493756
    assert result.extra["x_groq"] == {"id": "req_01jbd6g2qdfw2adyrt2az8hz4w"}


CASES = [
    (401, groq_error("Invalid API Key", code="invalid_api_key"), {}, ErrorKind.AUTHENTICATION, "Verifica tu GROQ_API_KEY"),
    (403, groq_error("Forbidden", type_="permission_error"), {}, ErrorKind.AUTHENTICATION, "Verifica tu GROQ_API_KEY"),
    (
        400,
        groq_error(
            "The model `llama-3.1-70b-versatile` has been decommissioned and is no longer supported. Please refer to "
            "https://console.groq.com/docs/deprecations for a recommendation on which model to use instead.",
            code="model_decommissioned",
        ),
        {},
        ErrorKind.MODEL_NOT_FOUND,
        "Elige otro modelo con GROQ_MODEL (modelos disponibles: https://console.groq.com/docs/models)",
    ),
    (
        404,
        groq_error("The model `nope` does not exist or you do not have access to it.", code="model_not_found"),
        {},
        ErrorKind.MODEL_NOT_FOUND,
        "GROQ_MODEL",
    ),
    (
        429,
        groq_error(
            "Rate limit reached for model `openai/gpt-oss-120b` in organization `org_01` service tier `on_demand` on "
            "requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 2s.",
            type_="requests",
            code="rate_limit_exceeded",
        ),
        {"retry-after": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
        ErrorKind.RATE_LIMIT,
        "El provider pide esperar 2.0s antes de reintentar",
    ),
    (
        400,
        groq_error(
            "Please reduce the length of the messages or completion.", code="context_length_exceeded"
        ),
        {},
        ErrorKind.CONTEXT_LENGTH,
        "Acorta la conversación",
    ),
    (413, groq_error("Request Entity Too Large", code="request_too_large"), {}, ErrorKind.CONTEXT_LENGTH, "Acorta"),
    (422, groq_error("Unprocessable Entity"), {}, ErrorKind.BAD_REQUEST, "Revisa los parámetros"),
    (498, groq_error("Flex tier capacity exceeded", code="capacity_exceeded"), {}, ErrorKind.SERVER_ERROR, "Reintenta"),
    (500, groq_error("Internal Server Error", type_="internal_server_error"), {}, ErrorKind.SERVER_ERROR, "Reintenta"),
    (502, "<html><body>502 Bad Gateway</body></html>", {"content-type": "text/html"}, ErrorKind.SERVER_ERROR, "Reintenta"),
    (503, groq_error("Service Unavailable", type_="internal_server_error"), {}, ErrorKind.SERVER_ERROR, "Reintenta"),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind", "suggestion"), CASES)
@respx.mock
async def test_every_error_maps_to_its_kind(
    manager: LLMManager, status: int, body: object, headers: dict, kind: ErrorKind, suggestion: str
) -> None:
    response = (
        httpx.Response(status, json=body, headers=headers)
        if isinstance(body, dict)
        else httpx.Response(status, text=body, headers=headers)
    )
    respx.post(f"{BASE}/chat/completions").mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    error = caught.value
    assert (error.provider, error.kind, error.status_code) == ("groq", kind, status)
    assert suggestion in error.suggestion
    assert KEY not in str(error)


@respx.mock
async def test_decommissioned_model_message_names_the_model(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(400, json=CASES[2][1])
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", model="llama-3.1-70b-versatile", fallback=False)
    assert caught.value.message == "el modelo 'llama-3.1-70b-versatile' fue retirado por el provider (model_decommissioned)"


@respx.mock
async def test_rate_limit_carries_retry_after(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(429, json=CASES[4][1], headers={"retry-after": "2"})
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.retry_after == 2.0 and caught.value.retryable


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(200, text='{"choices": [', headers={"content-type": "application/json"}), "no-JSON"),
        (httpx.Response(200, json={"id": "x", "choices": []}), "no choices"),
        (httpx.Response(200, json={**GROQ_SUCCESS, "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}), "empty content"),
        (httpx.Response(200, text="<html>captive portal</html>", headers={"content-type": "text/html"}), "text/html"),
    ],
)
@respx.mock
async def test_malformed_or_empty_answers(manager: LLMManager, response: httpx.Response, detail: str) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE and detail in caught.value.message


@respx.mock
async def test_length_finish_is_reported_not_hidden(manager: LLMManager) -> None:
    body = json.loads(json.dumps(GROQ_SUCCESS))
    body["choices"][0]["finish_reason"] = "length"
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=body))
    result = await manager.complete("hola", fallback=False)
    assert result.truncated and result.finish_reason == "length"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [(httpx.ConnectError("refused"), ErrorKind.UNREACHABLE), (httpx.ReadTimeout("silent"), ErrorKind.TIMEOUT)],
)
@respx.mock
async def test_network_failures(manager: LLMManager, exc: Exception, kind: ErrorKind) -> None:
    respx.post(f"{BASE}/chat/completions").mock(side_effect=exc)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is kind


@respx.mock
async def test_missing_key_makes_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "groq")
    route = respx.route(host="api.groq.com")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    availability = await manager.availability("groq")
    assert availability.kind is ErrorKind.NOT_CONFIGURED
    assert availability.suggestion == "Define GROQ_API_KEY en tu .env"
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED and not route.called


@respx.mock
async def test_availability_uses_the_model_list(manager: LLMManager) -> None:
    models = {"object": "list", "data": [{"id": "openai/gpt-oss-120b", "object": "model", "created": 1, "owned_by": "OpenAI", "active": True, "context_window": 131072}]}
    route = respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json=models))
    availability = await manager.availability("groq")
    assert availability.available and route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    models["data"][0]["id"] = "qwen/qwen3-32b"
    route.mock(return_value=httpx.Response(200, json=models))
    availability = await manager.availability("groq")
    assert not availability.available and availability.kind is ErrorKind.MODEL_NOT_FOUND
    route.mock(return_value=httpx.Response(401, json=groq_error("Invalid API Key", code="invalid_api_key")))
    availability = await manager.availability("groq")
    assert availability.kind is ErrorKind.AUTHENTICATION and availability.suggestion == "Verifica tu GROQ_API_KEY"


def sse(*events: object) -> bytes:
    """A text/event-stream body: one ``data:`` event per item (dicts as JSON)."""
    return "".join(f"data: {json.dumps(e) if isinstance(e, dict) else e}\n\n" for e in events).encode()




@respx.mock
async def test_stream_reads_text_and_x_groq_usage(manager: LLMManager) -> None:
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"},
        content=sse({**chunk(""), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]},
                    chunk("Fast"), chunk(" models"), chunk("."), LAST, "[DONE]"),
    ))
    events = [event async for event in manager.stream("hola")]
    result = events[-1]
    assert result.text == "Fast models." and result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (18, 3)
    assert result.extra["usage"]["queue_time"] == 0.061
    body = json.loads(route.calls.last.request.content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


@respx.mock
async def test_stream_error_before_any_token_maps_like_a_plain_call(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(
        401, json=groq_error("Invalid API Key", code="invalid_api_key")))
    with pytest.raises(ProviderError) as caught:
        async for _ in manager.stream("hola", fallback=False):
            pass
    assert caught.value.kind is ErrorKind.AUTHENTICATION and KEY not in str(caught.value)
