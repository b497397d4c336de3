"""OpenAI's chat completions format and error bodies, with respx (no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from openai_payloads import SUCCESS, USAGE_CHUNK, chunk

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

BASE = "https://api.openai.com/v1"
KEY = "sk-proj-unittestkey0123456789abcdefWXYZ"



def openai_error(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    # These tests read one answer each; retries have their own tests in tests/test_resilience*.py.
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    return LLMManager(host=PluginHost.discover(), env_file=None)


def test_host_lists_openai_as_installed() -> None:
    assert "openai" in PluginHost.discover().providers


@respx.mock
async def test_success(manager: LLMManager) -> None:
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=SUCCESS))
    result = await manager.complete([{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}], fallback=False)
    body = json.loads(route.calls.last.request.content)
    assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 1024 and body["stream"] is False
    assert body["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    assert (result.provider, result.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens) == (1117, 46, 1163)
    assert result.extra["service_tier"] == "default"


CASES = [
    (
        401,
        openai_error(
            f"Incorrect API key provided: sk-proj-****{KEY[-4:]}. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        ErrorKind.AUTHENTICATION,
        "Verifica tu OPENAI_API_KEY",
    ),
    (
        403,
        openai_error("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory"),
        ErrorKind.AUTHENTICATION,
        "Verifica tu OPENAI_API_KEY",
    ),
    (
        404,
        openai_error("The model `gpt-9` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
        ErrorKind.MODEL_NOT_FOUND,
        "OPENAI_MODEL",
    ),
    (
        429,
        openai_error(
            "You exceeded your current quota, please check your plan and billing details. For more information on this "
            "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        ErrorKind.QUOTA_EXHAUSTED,
        "facturación",
    ),
    (
        429,
        openai_error(
            "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 20s.",
            "requests",
            "rate_limit_exceeded",
        ),
        ErrorKind.RATE_LIMIT,
        "El provider pide esperar 20.0s antes de reintentar",
    ),
    (
        400,
        openai_error(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. "
            "Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        ErrorKind.CONTEXT_LENGTH,
        "Acorta",
    ),
    (
        400,
        openai_error("Your request was rejected as a result of our safety system.", "invalid_request_error", "content_policy_violation"),
        ErrorKind.CONTENT_FILTER,
        "Reformula",
    ),
    (
        400,
        openai_error("Invalid value for 'temperature': must be between 0 and 2.", "invalid_request_error", "invalid_value", "temperature"),
        ErrorKind.BAD_REQUEST,
        "LLM_TEMPERATURE",
    ),
    (
        500,
        openai_error("The server had an error while processing your request. Sorry about that!", "server_error", None),
        ErrorKind.SERVER_ERROR,
        "Reintenta",
    ),
    (
        503,
        openai_error("The engine is currently overloaded, please try again later", "server_error", None),
        ErrorKind.SERVER_ERROR,
        "Reintenta",
    ),
]


@pytest.mark.parametrize(("status", "body", "kind", "suggestion"), CASES)
@respx.mock
async def test_every_error_maps_to_its_kind(
    manager: LLMManager, status: int, body: dict, kind: ErrorKind, suggestion: str
) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    error = caught.value
    assert (error.provider, error.kind) == ("openai", kind)
    assert suggestion in error.suggestion
    assert KEY[-8:] not in str(error) and "sk-proj-****" not in str(error)


@respx.mock
async def test_quota_is_not_retryable_but_falls_back(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(429, json=CASES[3][1]))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert not caught.value.retryable and caught.value.fallback


@pytest.mark.parametrize(
    "choice",
    [
        {"index": 0, "message": {"role": "assistant", "content": None, "refusal": "I'm sorry, I can't help with that."}, "finish_reason": "stop"},
        {"index": 0, "message": {"role": "assistant", "content": "Partial answ"}, "finish_reason": "content_filter"},
    ],
)
@respx.mock
async def test_refusals_and_filtered_answers_are_content_filter(manager: LLMManager, choice: dict) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json={**SUCCESS, "choices": [choice]}))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola")
    assert caught.value.kind is ErrorKind.CONTENT_FILTER and not caught.value.fallback


@respx.mock
async def test_base_url_points_to_a_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal.test:8080/v1/")
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    route = respx.post("http://proxy.internal.test:8080/v1/chat/completions").mock(return_value=httpx.Response(200, json=SUCCESS))
    await LLMManager(host=PluginHost.discover(), env_file=None).complete("hola")
    assert route.called


@respx.mock
async def test_wrong_base_url_is_endpoint_not_found(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(404, text="404 page not found"))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.ENDPOINT_NOT_FOUND and caught.value.suggestion == "Verifica OPENAI_BASE_URL"


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({}, 0.262),  # only the message says it
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5s",
          "x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"}, 1.5),
        ({"retry-after-ms": "800", "x-ratelimit-reset-tokens": "1.5s"}, 0.8),
    ],
)
@respx.mock
async def test_rate_limit_wait_from_headers_or_message(manager: LLMManager, headers: dict, wait: float) -> None:
    body = openai_error(
        "Rate limit reached for gpt-4o-mini in organization org-unittest on tokens per min (TPM): Limit 200000, "
        "Used 199855, Requested 1020. Please try again in 262ms. Visit https://platform.openai.com/account/rate-limits to learn more.",
        "tokens",
        "rate_limit_exceeded",
    )
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(429, json=body, headers=headers))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_after == pytest.approx(wait)


@respx.mock
async def test_remaining_zero_on_a_success_skips_the_next_call(manager: LLMManager) -> None:
    """The headers of the API reference on a 200: no requests left until the reset, so no second request."""
    route = respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(
            200,
            json=SUCCESS,
            headers={
                "x-ratelimit-limit-requests": "60", "x-ratelimit-limit-tokens": "150000",
                "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "149984",
                "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-reset-tokens": "6ms",
            },
        )
    )
    await manager.complete("hola", fallback=False)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert route.call_count == 1
    assert caught.value.kind is ErrorKind.RATE_LIMIT and "LLM_MAX_RATE_LIMIT_WAIT" in caught.value.message
    assert "habría que esperar 360.0s" in caught.value.message


def sse(*events: object) -> bytes:
    return "".join(f"data: {json.dumps(e) if isinstance(e, dict) else e}\n\n" for e in events).encode()




def streamed(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


@respx.mock
async def test_stream_with_include_usage(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=streamed(
        sse(chunk("", role="assistant"), chunk("Hello"), chunk("!"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]")))
    result = [event async for event in manager.stream("hola")][-1]
    assert (result.text, result.finish_reason, result.usage.total_tokens) == ("Hello!", "stop", 11)


@respx.mock
async def test_stream_ending_without_done_but_finished_is_complete(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=streamed(sse(chunk("Hello"), chunk(finish="stop"))))
    result = [event async for event in manager.stream("hola")][-1]
    assert result.text == "Hello" and result.finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (sse(chunk("Hel")), ErrorKind.CONNECTION),  # no finish, no [DONE]
        (sse(chunk("Hel"), {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}), ErrorKind.SERVER_ERROR),
        (sse(chunk("Hel"), *["{not json"] * 4), ErrorKind.MALFORMED_RESPONSE),
        (sse(chunk("I can"), chunk(refusal="I'm sorry, I can't help with that.")), ErrorKind.CONTENT_FILTER),
        (sse(chunk("Hel"), chunk(finish="content_filter")), ErrorKind.CONTENT_FILTER),
    ],
)
@respx.mock
async def test_a_stream_broken_after_text_is_never_whole(manager: LLMManager, body: bytes, kind: ErrorKind) -> None:
    from patcode_core.errors import StreamInterruptedError

    respx.post(f"{BASE}/chat/completions").mock(return_value=streamed(body))
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in manager.stream("hola", fallback=False):
            pass
    assert caught.value.partial_text in ("Hel", "I can") and caught.value.failures[-1].kind is kind


@respx.mock
async def test_one_unreadable_chunk_is_skipped(manager: LLMManager, capsys: pytest.CaptureFixture[str]) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=streamed(
        sse(chunk("Hel"), "{not json", chunk("lo"), chunk(finish="stop"), "[DONE]")))
    result = [event async for event in manager.stream("hola")][-1]
    assert result.text == "Hello"
    assert "[WARNING] Fragmento ilegible de 'openai' omitido: {not json" in capsys.readouterr().err


@respx.mock
async def test_a_server_that_ignores_stream_still_answers(manager: LLMManager) -> None:
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=SUCCESS))
    result = [event async for event in manager.stream("hola")][-1]
    assert result.text == SUCCESS["choices"][0]["message"]["content"]


# -- the token-limit field: max_completion_tokens only where it is known to be read ----------

COMPATIBLE = "http://127.0.0.1:8099/v1"


@pytest.mark.parametrize(
    ("base_url", "forced", "expected"),
    [
        (None, None, "max_completion_tokens"),  # OpenAI's own API
        (COMPATIBLE, None, "max_tokens"),  # llama.cpp's server, vLLM, LM Studio...: the field they all read
        (COMPATIBLE, "max_completion_tokens", "max_completion_tokens"),
        (None, "max_tokens", "max_tokens"),
    ],
)
@respx.mock
async def test_token_limit_field_follows_the_base_url(
    monkeypatch: pytest.MonkeyPatch, base_url: str | None, forced: str | None, expected: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    monkeypatch.setenv("LLM_MAX_TOKENS", "16")
    if base_url:
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    if forced:
        monkeypatch.setenv("OPENAI_MAX_TOKENS_FIELD", forced)
    route = respx.post(f"{base_url or BASE}/chat/completions").mock(return_value=httpx.Response(200, json=SUCCESS))
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    try:
        await manager.complete("Hi", fallback=False)
    finally:
        await manager.aclose()
    body = json.loads(route.calls.last.request.content)
    other = {"max_tokens", "max_completion_tokens"} - {expected}
    assert body[expected] == 16 and not other & body.keys()


def test_a_wrong_token_limit_field_puts_only_openai_out_of_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MAX_TOKENS_FIELD", "max_output_tokens")
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    assert "OPENAI_MAX_TOKENS_FIELD" in manager.settings.llm.problems["openai"]


# -- llm providers against a compatible server that lists its model under another id ---------

LLAMA_MODELS = {"object": "list", "data": [{"id": "/models/SmolLM2-135M-Instruct.Q4_1.gguf", "object": "model", "owned_by": "me", "permissions": []}]}


def _compatible(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", COMPATIBLE)
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "openai")
    return LLMManager(host=PluginHost.discover(), env_file=None)


@respx.mock
async def test_a_server_that_answers_any_model_name_is_available_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    respx.get(f"{COMPATIBLE}/models").mock(return_value=httpx.Response(200, json=LLAMA_MODELS))
    probe = respx.post(f"{COMPATIBLE}/chat/completions").mock(return_value=httpx.Response(200, json=SUCCESS))
    async with _compatible(monkeypatch) as manager:
        status = await manager.availability("openai")
    assert status.available
    assert status.reason == (
        "el servidor no lista 'gpt-4o-mini' pero responde con ese nombre (lista: '/models/SmolLM2-135M-Instruct.Q4_1.gguf')"
    )
    body = json.loads(probe.calls.last.request.content)
    assert body["max_tokens"] == 1 and body["model"] == "gpt-4o-mini"


@respx.mock
async def test_a_server_that_refuses_the_model_shows_the_ids_it_listed_and_no_openai_link(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = {"object": "list", "data": [{"id": f"model-{i}"} for i in range(7)]}
    respx.get(f"{COMPATIBLE}/models").mock(return_value=httpx.Response(200, json=listed))
    respx.post(f"{COMPATIBLE}/chat/completions").mock(
        return_value=httpx.Response(404, json={"error": {"message": "The model `gpt-4o-mini` does not exist", "type": "invalid_request_error", "code": "model_not_found"}})
    )
    async with _compatible(monkeypatch) as manager:
        status = await manager.availability("openai")
    assert not status.available and status.kind is ErrorKind.MODEL_NOT_FOUND
    assert status.reason == "el servidor no tiene el modelo 'gpt-4o-mini'; lista: 'model-0', 'model-1', 'model-2', 'model-3', 'model-4' y 2 más"
    assert "platform.openai.com" not in status.suggestion and "OPENAI_MODEL" in status.suggestion


@respx.mock
async def test_openais_own_api_links_its_model_page_and_sends_no_probe(manager: LLMManager) -> None:
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(200, json={"object": "list", "data": [{"id": "gpt-4o"}]}))
    probe = respx.post(f"{BASE}/chat/completions")
    status = await manager.availability("openai")
    assert not status.available and "https://platform.openai.com/docs/models" in status.suggestion
    assert not probe.called
