"""Anthropic's Messages API (POST /v1/messages, GET /v1/models) and its errors, with respx (no network).

The payloads are the API reference's own (https://platform.claude.com/docs/en/api/messages,
/errors, /models/list, read 2026-11-26), quoted where each is used.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from anthropic_payloads import KEY, MESSAGE, REFUSAL, REQUEST_ID, anthropic_error

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import Message

BASE = "https://api.anthropic.com"
MESSAGES_URL = f"{BASE}/v1/messages"
MODELS_URL = f"{BASE}/v1/models"
LEGACY = "claude-sonnet-4-5-20250929"  # takes a temperature


def make_manager(monkeypatch: pytest.MonkeyPatch, **env: str) -> LLMManager:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "anthropic")
    # These tests read one answer each; retries have their own tests in tests/test_resilience*.py.
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return LLMManager(host=PluginHost.discover(), env_file=None)


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    return make_manager(monkeypatch)


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text) and KEY not in repr(text)


# -- the plugin as the host sees it ------------------------------------------------------------


def test_host_lists_anthropic_as_installed() -> None:
    assert "anthropic" in PluginHost.discover().providers


def test_provider_info() -> None:
    info = PluginHost.discover().providers["anthropic"]
    assert (info.display_name, info.key_env, info.priority) == ("Anthropic", "ANTHROPIC_API_KEY", 40)
    assert info.joins_default_order
    # The rate-limit reference's headers; resets are RFC 3339 timestamps.
    headers = info.rate_limit_headers
    assert headers is not None and headers.reset_format == "timestamp"
    assert (headers.requests_remaining, headers.tokens_remaining) == (
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-remaining",
    )
    assert (headers.requests_reset, headers.tokens_reset) == (
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
    )


async def test_without_a_key_it_is_not_configured_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "anthropic")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    with respx.mock(assert_all_called=False) as router:
        route = router.route(host="api.anthropic.com")
        status = await manager.availability("anthropic")
        with pytest.raises(ProviderError) as caught:
            await manager.complete("hola", fallback=False)
    assert not route.called
    assert status.kind is ErrorKind.NOT_CONFIGURED and "ANTHROPIC_API_KEY" in status.reason
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED


# -- the request ------------------------------------------------------------------------------


@respx.mock
async def test_request_headers_and_body(manager: LLMManager) -> None:
    route = respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
    await manager.complete("Hello, world", max_tokens=1024)
    request = route.calls.last.request
    # The reference's curl: x-api-key, anthropic-version: 2023-06-01, content-type: application/json.
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    # The default model (claude-sonnet-5-5) takes no temperature: none is sent.
    assert json.loads(request.content) == {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, world"}],
    }


@respx.mock
async def test_system_messages_go_to_the_top_level_system_field(manager: LLMManager) -> None:
    route = respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
    await manager.complete(
        [
            Message("system", "Eres un asistente de código."),
            Message("user", "hola"),
            Message("assistant", "¿En qué te ayudo?"),
            Message("system", "Responde en una línea."),
            Message("user", "¿Qué es pluggy?"),
            Message("user", "En Python."),
        ]
    )
    body = json.loads(route.calls.last.request.content)
    assert body["system"] == "Eres un asistente de código.\n\nResponde en una línea."
    # No system role in messages; consecutive user turns are joined so the roles alternate.
    assert body["messages"] == [
        {"role": "user", "content": "hola"},
        {"role": "assistant", "content": "¿En qué te ayudo?"},
        {"role": "user", "content": "¿Qué es pluggy?\n\nEn Python."},
    ]


@respx.mock
async def test_a_last_assistant_message_is_sent_as_a_prefill(manager: LLMManager) -> None:
    route = respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
    await manager.complete([Message("user", "Nombra un color."), Message("assistant", "El color es:  \n")])
    body = json.loads(route.calls.last.request.content)
    # The API refuses a final assistant turn that ends in white space.
    assert body["messages"][-1] == {"role": "assistant", "content": "El color es:"}


@pytest.mark.parametrize(
    ("env", "model", "temperature", "sent"),
    [
        ({}, LEGACY, 0.3, 0.3),
        ({}, LEGACY, 1.5, 1.0),  # PatCode's 0..2 is cut to Anthropic's 0..1
        ({}, LEGACY, 0.0, 0.0),
        ({}, "claude-haiku-4-5", 0.7, 0.7),
        ({}, "claude-sonnet-5-5", 0.7, None),  # a 400 on Sonnet 5 and later: not sent
        ({}, "claude-opus-4-7", 0.7, None),
        ({"ANTHROPIC_SEND_TEMPERATURE": "always"}, "claude-sonnet-5-5", 1.9, 1.0),
        ({"ANTHROPIC_SEND_TEMPERATURE": "never"}, LEGACY, 0.3, None),
    ],
)
async def test_temperature(
    monkeypatch: pytest.MonkeyPatch, env: dict, model: str, temperature: float, sent: float | None
) -> None:
    manager = make_manager(monkeypatch, ANTHROPIC_MODEL=model, **env)
    with respx.mock:
        route = respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
        await manager.complete("hola", temperature=temperature)
    body = json.loads(route.calls.last.request.content)
    assert body.get("temperature") == sent and ("temperature" in body) == (sent is not None)


async def test_a_compatible_servers_own_model_gets_the_temperature(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(monkeypatch, ANTHROPIC_BASE_URL="https://llm.example.test/anthropic", ANTHROPIC_MODEL="acme-coder")
    with respx.mock:
        route = respx.post("https://llm.example.test/anthropic/v1/messages").mock(return_value=httpx.Response(200, json=MESSAGE))
        await manager.complete("hola", temperature=0.2)
    assert json.loads(route.calls.last.request.content)["temperature"] == 0.2


# -- the answer -------------------------------------------------------------------------------


@respx.mock
async def test_reply_text_usage_model_and_cost(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE, headers={"request-id": REQUEST_ID}))
    result = await manager.complete("Hello, world")
    assert (result.text, result.provider, result.finish_reason) == ("Hi! My name is Claude.", "anthropic", "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2095, 503)
    assert result.extra["id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF" and result.extra["stop_reason"] == "end_turn"
    # claude-sonnet-4-5-20250929 is priced by the pattern claude-sonnet-4*: $3 / $15 per million.
    assert result.cost == pytest.approx((2095 * 3 + 503 * 15) / 1_000_000)


@respx.mock
async def test_text_blocks_are_joined_and_thinking_is_not_the_answer(manager: LLMManager) -> None:
    # Models that think first send a thinking block before the text (its text is empty unless display asks for it).
    body = {
        **MESSAGE,
        "content": [
            {"type": "thinking", "thinking": "", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
            {"type": "text", "text": "Hi! "},
            {"type": "text", "text": "My name is Claude."},
        ],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1500,
            "service_tier": "standard",
        },
    }
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=body))
    result = await manager.complete("hola")
    assert result.text == "Hi! My name is Claude."
    assert (result.usage.input_tokens, result.usage.output_tokens) == (10, 40)
    assert result.extra["usage"] == {
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1500,
        "service_tier": "standard",
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "length"),  # an unfinished turn: never passed off as whole
        ("tool_use", "tool_calls"),
        ("some_future_reason", "some_future_reason"),
    ],
)
@respx.mock
async def test_stop_reasons(manager: LLMManager, stop_reason: str, finish: str) -> None:
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json={**MESSAGE, "stop_reason": stop_reason}))
    result = await manager.complete("hola")
    assert result.finish_reason == finish and result.extra["stop_reason"] == stop_reason


@respx.mock
async def test_a_refusal_is_a_content_filter_error_with_anthropics_explanation(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=REFUSAL))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola")  # fallback on: a content filter error still does not fall back
    assert caught.value.kind is ErrorKind.CONTENT_FILTER and not caught.value.fallback
    assert "This request was declined because it could enable cyber harm. (cyber)" in caught.value.message


@respx.mock
async def test_no_text_after_thinking_to_max_tokens_asks_for_more_tokens(manager: LLMManager) -> None:
    body = {**MESSAGE, "content": [{"type": "thinking", "thinking": "", "signature": "x"}], "stop_reason": "max_tokens"}
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE and "LLM_MAX_TOKENS" in caught.value.suggestion


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"id": "msg_x", "type": "message"}),
        httpx.Response(200, json={**MESSAGE, "content": []}),
    ],
)
@respx.mock
async def test_malformed_answers(manager: LLMManager, response: httpx.Response) -> None:
    respx.post(MESSAGES_URL).mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE


# -- errors (the errors reference's table) -----------------------------------------------------

CLOUDFLARE_413 = "<html><head><title>413 Request Entity Too Large</title></head><body>cloudflare</body></html>"

ERRORS = [
    (
        400,
        anthropic_error("invalid_request_error", 'messages: roles must alternate between "user" and "assistant"'),
        ErrorKind.BAD_REQUEST,
        "LLM_TEMPERATURE",
    ),
    (
        400,
        anthropic_error("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
        ErrorKind.CONTEXT_LENGTH,
        "/clear",
    ),
    (
        400,
        anthropic_error(
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 187254 + 20000 > 200000, decrease input length or `max_tokens` and try again",
        ),
        ErrorKind.CONTEXT_LENGTH,
        "/clear",
    ),
    (
        400,
        anthropic_error(
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
        ),
        ErrorKind.QUOTA_EXHAUSTED,
        "Billing",
    ),
    (
        400,
        anthropic_error("invalid_request_error", "temperature is deprecated for this model."),
        ErrorKind.BAD_REQUEST,
        "ANTHROPIC_SEND_TEMPERATURE=never",
    ),
    (
        400,
        anthropic_error(
            "invalid_request_error",
            "This model does not support assistant message prefill. The conversation must end with a user message.",
        ),
        ErrorKind.BAD_REQUEST,
        "mensaje del usuario",
    ),
    (
        400,
        anthropic_error(
            "invalid_request_error",
            "max_tokens: 200000 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4-5-20250929",
        ),
        ErrorKind.BAD_REQUEST,
        "Baja LLM_MAX_TOKENS",
    ),
    (401, anthropic_error("authentication_error", "invalid x-api-key"), ErrorKind.AUTHENTICATION, "ANTHROPIC_API_KEY"),
    (402, anthropic_error("billing_error", "Your organization is out of credits."), ErrorKind.QUOTA_EXHAUSTED, "Billing"),
    (
        403,
        anthropic_error("permission_error", "Your API key does not have permission to use the specified resource."),
        ErrorKind.AUTHENTICATION,
        "ANTHROPIC_MODEL",
    ),
    (404, anthropic_error("not_found_error", "model: claude-sonnet-9-9"), ErrorKind.MODEL_NOT_FOUND, "ANTHROPIC_MODEL"),
    (
        404,
        anthropic_error("not_found_error", "The requested resource could not be found."),
        ErrorKind.ENDPOINT_NOT_FOUND,
        "ANTHROPIC_BASE_URL",
    ),
    (
        413,
        anthropic_error("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        ErrorKind.CONTEXT_LENGTH,
        "/clear",
    ),
    (
        429,
        anthropic_error("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
        ErrorKind.RATE_LIMIT,
        "Espera",
    ),
    (500, anthropic_error("api_error", "Internal server error"), ErrorKind.SERVER_ERROR, "Reintenta"),
    (504, anthropic_error("timeout_error", "Request timed out"), ErrorKind.SERVER_ERROR, "Reintenta"),
    (529, anthropic_error("overloaded_error", "Overloaded"), ErrorKind.SERVER_ERROR, "Reintenta"),
]


@pytest.mark.parametrize(
    ("status", "body", "kind", "suggestion"), ERRORS, ids=[f"{e[0]}-{e[1]['error']['type']}-{i}" for i, e in enumerate(ERRORS)]
)
@respx.mock
async def test_errors(manager: LLMManager, status: int, body: dict, kind: ErrorKind, suggestion: str) -> None:
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(status, json=body, headers={"request-id": REQUEST_ID}))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    error = caught.value
    assert error.kind is kind and error.status_code == status and suggestion in error.suggestion
    assert body["error"]["message"][:40] in error.message and f"request-id {REQUEST_ID}" in error.message
    assert_no_key(error, error.message, error.suggestion)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(413, text=CLOUDFLARE_413, headers={"content-type": "text/html"}), ErrorKind.CONTEXT_LENGTH),
        (httpx.Response(502, text="<html>Bad gateway</html>", headers={"content-type": "text/html"}), ErrorKind.SERVER_ERROR),
        (httpx.Response(529, text="overloaded"), ErrorKind.SERVER_ERROR),
        (httpx.Response(404, text="404 page not found"), ErrorKind.ENDPOINT_NOT_FOUND),
        (httpx.Response(422, json={"detail": "unprocessable"}), ErrorKind.BAD_REQUEST),
        (httpx.Response(409, json=anthropic_error("conflict_error", "conflict")), ErrorKind.SERVER_ERROR),
        (httpx.Response(400, json=anthropic_error("some_future_error", "new")), ErrorKind.BAD_REQUEST),
        (httpx.Response(307, headers={"location": "https://elsewhere.example/v1/messages"}), ErrorKind.ENDPOINT_NOT_FOUND),
    ],
)
@respx.mock
async def test_errors_without_an_anthropic_body(manager: LLMManager, response: httpx.Response, kind: ErrorKind) -> None:
    respx.post(MESSAGES_URL).mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is kind


@respx.mock
async def test_overloaded_is_retried_on_the_same_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(monkeypatch, LLM_MAX_RETRIES="1", LLM_RETRY_BASE_DELAY="0.01")
    route = respx.post(MESSAGES_URL).mock(
        side_effect=[
            httpx.Response(529, json=anthropic_error("overloaded_error", "Overloaded")),
            httpx.Response(200, json=MESSAGE),
        ]
    )
    result = await manager.complete("hola", fallback=False)
    assert result.text == "Hi! My name is Claude." and result.attempts == 2 and route.call_count == 2


@respx.mock
async def test_rate_limit_carries_the_retry_after_header(manager: LLMManager) -> None:
    # The rate-limits reference: a 429 comes with retry-after (seconds) and the anthropic-ratelimit-* headers.
    respx.post(MESSAGES_URL).mock(
        return_value=httpx.Response(
            429,
            json=anthropic_error("rate_limit_error", "This request would exceed the rate limit for your organization"),
            headers={"retry-after": "17", "anthropic-ratelimit-requests-remaining": "0"},
        )
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_after == 17.0
    assert caught.value.suggestion == "Anthropic pide esperar 17.0s antes de reintentar"


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@respx.mock
async def test_rate_limit_without_retry_after_waits_for_the_exhausted_limits_reset(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(
        return_value=httpx.Response(
            429,
            json=anthropic_error("rate_limit_error", "rate limited"),
            headers={
                "anthropic-ratelimit-requests-remaining": "12",
                "anthropic-ratelimit-requests-reset": _in(5),
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": _in(40),
            },
        )
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.retry_after is not None and 35 < caught.value.retry_after <= 40


@respx.mock
async def test_an_exhausted_limit_in_a_200_keeps_the_core_from_sending_until_its_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core reads Anthropic's own rate-limit headers (ProviderInfo.rate_limit_headers)."""
    manager = make_manager(monkeypatch, LLM_MAX_RATE_LIMIT_WAIT="1")  # refuse at once rather than wait 30 s
    route = respx.post(MESSAGES_URL).mock(
        return_value=httpx.Response(
            200,
            json=MESSAGE,
            headers={"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": _in(30)},
        )
    )
    await manager.complete("hola", fallback=False)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("otra", fallback=False)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and route.call_count == 1


@respx.mock
async def test_the_key_never_appears_even_when_the_server_echoes_it(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(
        return_value=httpx.Response(401, json=anthropic_error("authentication_error", f"invalid x-api-key: {KEY}"))
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.AUTHENTICATION
    assert_no_key(caught.value, caught.value.message, caught.value.suggestion)


@respx.mock
async def test_connection_refused_is_unreachable(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(side_effect=httpx.ConnectError("All connection attempts failed"))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.UNREACHABLE


# -- availability: GET /v1/models ------------------------------------------------------------------


# The Models API's list response.
def models_page(*ids: str, has_more: bool = False) -> dict:
    return {
        "data": [{"type": "model", "id": id_, "display_name": id_, "created_at": "2026-09-29T00:00:00Z"} for id_ in ids],
        "has_more": has_more,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }


CURRENT = ("claude-fable-5-2", "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5", "claude-haiku-4-5-20251001")


@respx.mock
async def test_availability_lists_the_models_with_the_key(manager: LLMManager) -> None:
    route = respx.get(MODELS_URL).mock(return_value=httpx.Response(200, json=models_page(*CURRENT)))
    status = await manager.availability("anthropic")
    assert status.available and "claude-haiku-4-5-20251001" in status.models
    request = route.calls.last.request
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
    assert request.url.params["limit"] == "1000"  # one page of every model (the default page is 20)


@pytest.mark.parametrize(
    ("model", "available"),
    [
        ("claude-sonnet-5-5", True),
        ("claude-haiku-4-5", True),  # an alias: served by its dated snapshot
        ("claude-haiku-4-5-20251001", True),
        ("claude-sonnet-5", False),  # not served by claude-sonnet-5-5
        ("claude-3-5-sonnet-latest", False),
    ],
)
async def test_availability_matches_aliases_to_snapshots(monkeypatch: pytest.MonkeyPatch, model: str, available: bool) -> None:
    manager = make_manager(monkeypatch, ANTHROPIC_MODEL=model)
    with respx.mock:
        respx.get(MODELS_URL).mock(return_value=httpx.Response(200, json=models_page(*CURRENT)))
        status = await manager.availability("anthropic")
    assert status.available is available
    if not available:
        assert status.kind is ErrorKind.MODEL_NOT_FOUND and "ANTHROPIC_MODEL" in status.suggestion
        assert f"'{model}'" in status.reason


@respx.mock
async def test_availability_with_more_pages_does_not_claim_the_model_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(monkeypatch, ANTHROPIC_MODEL="claude-3-haiku-20240307")
    respx.get(MODELS_URL).mock(return_value=httpx.Response(200, json=models_page(*CURRENT, has_more=True)))
    assert (await manager.availability("anthropic")).available


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(401, json=anthropic_error("authentication_error", "invalid x-api-key")), ErrorKind.AUTHENTICATION),
        (httpx.Response(529, json=anthropic_error("overloaded_error", "Overloaded")), ErrorKind.SERVER_ERROR),
        (httpx.Response(200, text="<html></html>", headers={"content-type": "text/html"}), ErrorKind.MALFORMED_RESPONSE),
    ],
)
@respx.mock
async def test_availability_failures(manager: LLMManager, response: httpx.Response, kind: ErrorKind) -> None:
    respx.get(MODELS_URL).mock(return_value=response)
    status = await manager.availability("anthropic")
    assert not status.available and status.kind is kind
    assert_no_key(status.reason, status.suggestion)


@respx.mock
async def test_availability_on_a_compatible_server_without_a_model_list(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(monkeypatch, ANTHROPIC_BASE_URL="https://llm.example.test/anthropic", ANTHROPIC_MODEL="acme-coder")
    respx.get("https://llm.example.test/anthropic/v1/models").mock(return_value=httpx.Response(404, json={"detail": "Not Found"}))
    status = await manager.availability("anthropic")
    assert status.available and "/v1/models" in status.reason


# -- settings --------------------------------------------------------------------------------------


def test_settings_defaults_and_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    from patcode_anthropic.settings import AnthropicSettings

    settings = AnthropicSettings()
    assert (settings.model, settings.base_url, settings.send_temperature) == ("claude-sonnet-5-5", BASE, "auto")
    assert settings.official and settings.config_warnings() == []
    monkeypatch.setenv("ANTHROPIC_API_KEY", "gsk_not-an-anthropic-key-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com/v1/")
    warnings = AnthropicSettings().config_warnings()
    assert len(warnings) == 2 and "sk-ant-" in warnings[0] and "/v1" in warnings[1]
    assert all("gsk_not-an-anthropic-key" not in warning for warning in warnings)


def test_a_bad_send_temperature_puts_only_anthropic_out_of_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_SEND_TEMPERATURE", "sometimes")
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "anthropic")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    assert "ANTHROPIC_SEND_TEMPERATURE" in manager.settings.llm.problems["anthropic"]


def test_catalogue_has_the_same_keys_and_fields_in_both_languages() -> None:
    import string

    from patcode_anthropic.messages import MESSAGES

    assert MESSAGES.keys("es") == MESSAGES.keys("en")
    for key in MESSAGES.keys("es"):
        fields = [{f for _, f, _, _ in string.Formatter().parse(MESSAGES.languages[lang][key]) if f} for lang in ("es", "en")]
        assert fields[0] == fields[1], key


def test_the_plugin_imports_only_the_public_module() -> None:
    import ast
    from pathlib import Path

    import patcode_anthropic

    for path in Path(patcode_anthropic.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("patcode_core") or name == "patcode_core.plugin", f"{path.name} imports {name}"
                assert not name.startswith("pydantic"), f"{path.name} imports {name} (the door exports SettingsConfigDict)"
