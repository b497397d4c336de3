"""Gemini's generateContent, models.get and error bodies, with respx (no network).

Payload sources (read 2026-11-26 through the project's search of stored public copies):

- request/response shapes: https://ai.google.dev/api/generate-content and the v1beta proto
  google/ai/generativelanguage/v1beta/generative_service.proto (googleapis/googleapis);
- error statuses: https://ai.google.dev/gemini-api/docs/troubleshooting (backend error codes table);
- error bodies as the API sent them, quoted in public issues: each case names its thread.
"""

from __future__ import annotations

import json
import string
from datetime import date

import httpx
import pytest
import respx
from gemini_payloads import REPLY, error_info, google_error, quota_failure, retry_info
from patcode_gemini.messages import MESSAGES
from patcode_gemini.prices import prices
from patcode_gemini.settings import DEFAULT_MODEL, GeminiSettings

from patcode_core.accounting.prices import PriceBook
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

BASE = "https://generativelanguage.googleapis.com"
GENERATE = f"{BASE}/v1beta/models/{DEFAULT_MODEL}:generateContent"
MODEL_URL = f"{BASE}/v1beta/models/{DEFAULT_MODEL}"

def test_host_lists_gemini_as_installed() -> None:
    assert "gemini" in PluginHost.discover().providers


# -- the request and the answer ------------------------------------------------------------


@respx.mock
async def test_request_and_answer(manager: LLMManager, key: str) -> None:
    route = respx.post(GENERATE).mock(return_value=httpx.Response(200, json=REPLY))
    result = await manager.complete(
        [
            {"role": "system", "content": "Eres conciso."},
            {"role": "system", "content": "Responde en inglés."},
            {"role": "user", "content": "hola"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is AI?"},
            {"role": "user", "content": "One line."},
        ],
        temperature=0.2,
        max_tokens=512,
    )
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "contents": [
            {"role": "user", "parts": [{"text": "hola"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "What is AI?"}, {"text": "One line."}]},
        ],
        "systemInstruction": {"parts": [{"text": "Eres conciso.\n\nResponde en inglés."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 512},
    }
    assert request.headers["x-goog-api-key"] == key
    assert str(request.url) == GENERATE and key not in str(request.url)  # never ?key=...
    assert "authorization" not in request.headers
    assert (result.text, result.provider, result.finish_reason, result.model) == (
        "AI learns patterns from examples.", "gemini", "stop", "gemini-3.5-flash-lite")
    # Thinking is billed as output: 7 visible + 395 thinking tokens.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (12, 402)
    assert result.extra["usage"]["thoughtsTokenCount"] == 395 and result.extra["usage"]["candidatesTokenCount"] == 7
    assert result.extra["response_id"] == "i5UmaYmWKrOvkdUPlaiEoAk"
    assert result.cost == pytest.approx((12 * 0.30 + 402 * 2.50) / 1_000_000)


@respx.mock
async def test_thought_parts_are_not_answer_text(manager: LLMManager) -> None:
    body = json.loads(json.dumps(REPLY))
    body["candidates"][0]["content"]["parts"] = [{"text": "**Planning** the reply", "thought": True}, {"text": "Paris."}]
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=body))
    assert (await manager.complete("capital of France?")).text == "Paris."


@respx.mock
async def test_max_tokens_is_a_truncated_answer(manager: LLMManager) -> None:
    body = json.loads(json.dumps(REPLY))
    body["candidates"][0]["finishReason"] = "MAX_TOKENS"
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=body))
    result = await manager.complete("hola")
    assert result.finish_reason == "length" and result.truncated


@respx.mock
async def test_thinking_that_spends_the_whole_budget_says_so(manager: LLMManager) -> None:
    # No visible text: thinking used maxOutputTokens (candidatesTokenCount is omitted, being 0).
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
            "usageMetadata": {"promptTokenCount": 27, "totalTokenCount": 227, "thoughtsTokenCount": 200},
            "modelVersion": "gemini-3.5-flash-lite"}
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", max_tokens=200, fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE
    assert "200 tokens de razonamiento" in caught.value.message and "LLM_MAX_TOKENS" in caught.value.suggestion


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"])
@respx.mock
async def test_filtered_answers_are_content_filter(manager: LLMManager, reason: str) -> None:
    # Candidate.FinishReason: "The response candidate content was flagged for safety reasons", etc.
    body = {"candidates": [{"content": {"parts": [{"text": "Sure, here"}], "role": "model"}, "finishReason": reason, "index": 0,
                            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                                              {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}}
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.CONTENT_FILTER and not caught.value.fallback
    assert reason in caught.value.message and "HARM_CATEGORY_DANGEROUS_CONTENT" in caught.value.message
    assert "HARASSMENT" not in caught.value.message


@respx.mock
async def test_a_blocked_prompt_is_content_filter(manager: LLMManager) -> None:
    # "If set, the prompt was blocked and no candidates are returned. Rephrase the prompt." (PromptFeedback.block_reason)
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10}, "modelVersion": "gemini-3.5-flash-lite"}
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.CONTENT_FILTER
    assert caught.value.message == "Gemini bloqueó el mensaje por sus filtros de contenido (PROHIBITED_CONTENT)"
    assert "Reformula" in caught.value.suggestion


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={}),  # no candidates, no promptFeedback
        httpx.Response(200, json=[REPLY]),  # a list is the streaming shape, not generateContent's
        httpx.Response(200, json={"candidates": [{"content": {"parts": [{"text": "Hal"}], "role": "model"}, "index": 0}]}),
        httpx.Response(200, json={"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "STOP"}]}),
        # OTHER is "Unknown reason": the text may be cut, so it is never passed off as whole.
        httpx.Response(200, json={"candidates": [{"content": {"parts": [{"text": "Hal"}], "role": "model"}, "finishReason": "OTHER"}]}),
        httpx.Response(200, json={"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}),
    ],
)
@respx.mock
async def test_unusable_answers_are_malformed(manager: LLMManager, response: httpx.Response) -> None:
    respx.post(GENERATE).mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE


@respx.mock
async def test_an_error_object_inside_a_200_is_that_error(manager: LLMManager) -> None:
    respx.post(GENERATE).mock(return_value=httpx.Response(200, json=google_error(
        503, "UNAVAILABLE", "The model is overloaded. Please try again later.")))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.SERVER_ERROR and "overloaded" in caught.value.message


# -- errors ---------------------------------------------------------------------------------

ERRORS = [
    pytest.param(  # continuedev/continue#8516 (the key is refused with 400, not 401)
        400, google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                          error_info("API_KEY_INVALID"),
                          {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                           "message": "API key not valid. Please pass a valid API key."}),
        ErrorKind.AUTHENTICATION, "Revisa GEMINI_API_KEY", id="400-API_KEY_INVALID"),
    pytest.param(  # google-gemini/gemini-cli#25198
        400, google_error(400, "INVALID_ARGUMENT", "API Key not found. Please pass a valid API key.", error_info("API_KEY_INVALID")),
        ErrorKind.AUTHENTICATION, "Revisa GEMINI_API_KEY", id="400-API-key-not-found"),
    pytest.param(  # google-gemini/gemini-cli#4231
        400, google_error(400, "INVALID_ARGUMENT",
                          "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576)."),
        ErrorKind.CONTEXT_LENGTH, "Acorta la conversación", id="400-context-too-long"),
    pytest.param(
        400, google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
        ErrorKind.BAD_REQUEST, "Revisa los parámetros", id="400-INVALID_ARGUMENT"),
    pytest.param(  # poenl/gemini-api#4
        400, google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        ErrorKind.QUOTA_EXHAUSTED, "región admitida", id="400-FAILED_PRECONDITION-location"),
    pytest.param(  # the troubleshooting table's own description of FAILED_PRECONDITION
        400, google_error(400, "FAILED_PRECONDITION", "Gemini API free tier is not available in your country. "
                          "Please enable billing on your project in Google AI Studio."),
        ErrorKind.QUOTA_EXHAUSTED, "Activa la facturación", id="400-FAILED_PRECONDITION-billing"),
    pytest.param(  # continuedev/continue#10513
        403, google_error(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key."),
        ErrorKind.AUTHENTICATION, "Revisa que GEMINI_API_KEY", id="403-leaked-key"),
    pytest.param(  # continuedev/continue#12781
        403, google_error(403, "PERMISSION_DENIED", "Requests to this API generativelanguage.googleapis.com method "
                          "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.",
                          error_info("API_KEY_SERVICE_BLOCKED", consumer="projects/177838813423")),
        ErrorKind.AUTHENTICATION, "Revisa que GEMINI_API_KEY", id="403-service-blocked"),
    pytest.param(  # google/adk-python#200
        404, google_error(404, "NOT_FOUND", "models/gemini-3.5-flash-lite is not found for API version v1beta, or is not "
                          "supported for generateContent. Call ListModels to see the list of available models and their "
                          "supported methods."),
        ErrorKind.MODEL_NOT_FOUND, "GEMINI_MODEL", id="404-model"),
    pytest.param(  # googleapis/python-genai#2044 (per-minute and per-day quotas, RetryInfo 47s)
        429, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing "
                          "details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                          quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                          retry_info("47s")),
        ErrorKind.RATE_LIMIT, "Gemini pide esperar 47.0s", id="429-RetryInfo"),
    pytest.param(  # only a daily quota violated: waiting seconds cannot help
        429, google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
                          quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), retry_info("20s")),
        ErrorKind.QUOTA_EXHAUSTED, "medianoche", id="429-per-day-only"),
    pytest.param(  # gke-labs/gemini-for-kubernetes-development#1215: no RetryInfo at all
        429, google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        ErrorKind.RATE_LIMIT, "ai.google.dev/gemini-api/docs/rate-limits", id="429-bare"),
    pytest.param(  # the api-errors table: 402 RESOURCE_EXHAUSTED, prepaid credit used up
        402, google_error(402, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted."),
        ErrorKind.QUOTA_EXHAUSTED, "crédito", id="402-prepaid-credit"),
    pytest.param(  # google-gemini/gemini-cli#3665
        500, google_error(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting"),
        ErrorKind.SERVER_ERROR, "acorta la conversación", id="500-INTERNAL"),
    pytest.param(  # lightpanda-io/browser#2915
        503, google_error(503, "UNAVAILABLE", "This model is currently experiencing high demand. Spikes in demand are usually "
                          "temporary. Please try again later."),
        ErrorKind.SERVER_ERROR, "Reintenta", id="503-UNAVAILABLE"),
    pytest.param(  # the troubleshooting table: 504 DEADLINE_EXCEEDED
        504, google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
        ErrorKind.SERVER_ERROR, "Reintenta", id="504-DEADLINE_EXCEEDED"),
    pytest.param(  # the troubleshooting table: 499 CANCELLED, the connection closed early
        499, google_error(499, "CANCELLED", "The operation was cancelled."),
        ErrorKind.CONNECTION, "Reintenta", id="499-CANCELLED"),
]


@pytest.mark.parametrize(("status", "body", "kind", "suggestion"), ERRORS)
@respx.mock
async def test_every_error_maps_to_its_kind(
    manager: LLMManager, key: str, status: int, body: dict, kind: ErrorKind, suggestion: str
) -> None:
    route = respx.post(GENERATE).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    error = caught.value
    assert error.kind is kind and suggestion in error.suggestion, (error.kind, str(error))
    assert error.status_code == status and error.provider == "gemini"
    assert body["error"]["message"][:60] in error.message  # Google's words are kept
    assert key not in str(error) and key not in str(route.calls.last.request.url)


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (httpx.Response(502, text="<html><title>502 Bad Gateway</title></html>", headers={"content-type": "text/html"}),
         ErrorKind.SERVER_ERROR),
        (httpx.Response(404, text="<html><title>404 Not Found</title></html>", headers={"content-type": "text/html"}),
         ErrorKind.ENDPOINT_NOT_FOUND),
        (httpx.Response(401, text="Unauthorized"), ErrorKind.AUTHENTICATION),
        (httpx.Response(429, text="Too Many Requests", headers={"Retry-After": "3"}), ErrorKind.RATE_LIMIT),
    ],
)
@respx.mock
async def test_a_proxy_in_the_way_still_gets_a_kind(manager: LLMManager, response: httpx.Response, kind: ErrorKind) -> None:
    respx.post(GENERATE).mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is kind


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "60"}, 60.0), ({}, 37.0), ({"Retry-After": "5"}, 37.0)])
@respx.mock
async def test_rate_limit_waits_what_google_asked(manager: LLMManager, headers: dict, wait: float) -> None:
    respx.post(GENERATE).mock(return_value=httpx.Response(429, headers=headers, json=google_error(
        429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", retry_info("37s"))))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_after == wait


@respx.mock
async def test_the_key_never_reaches_a_message_even_when_google_quotes_it(manager: LLMManager, key: str) -> None:
    # google/generative-ai-docs#356: a suspended key is quoted in the message; DebugInfo may quote it too.
    echoed = google_error(
        403, "PERMISSION_DENIED", f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
        error_info("CONSUMER_SUSPENDED", consumer="projects/578829824020", containerInfo=f"api_key:{key}"),
        {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": f"Invalid API key: {key}"},
    )
    other = "AIzaSyOTHER-key-someone-else-pasted-0000"
    route = respx.post(GENERATE).mock(side_effect=[
        httpx.Response(403, json=echoed),
        httpx.Response(400, json=google_error(400, "INVALID_ARGUMENT", f"API key not valid: {other}", error_info("API_KEY_INVALID"))),
    ])
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await manager.complete("hola", fallback=False)
        assert key not in str(caught.value) and other not in str(caught.value)
        assert caught.value.kind is ErrorKind.AUTHENTICATION
    assert all(key not in str(call.request.url) for call in route.calls)


@respx.mock
async def test_redirects_are_not_followed(manager: LLMManager, key: str) -> None:
    route = respx.post(GENERATE).mock(return_value=httpx.Response(302, headers={"location": "https://elsewhere.test/x"}))
    elsewhere = respx.post("https://elsewhere.test/x")
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.ENDPOINT_NOT_FOUND and route.called and not elsewhere.called


@respx.mock
async def test_connection_refused_is_unreachable(manager: LLMManager) -> None:
    respx.post(GENERATE).mock(side_effect=httpx.ConnectError("All connection attempts failed"))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.UNREACHABLE


# -- settings and addresses -----------------------------------------------------------------


@respx.mock
async def test_no_key_means_not_configured_and_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "gemini")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    status = await manager.availability("gemini")
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", provider="gemini", fallback=False)
    assert status.kind is ErrorKind.NOT_CONFIGURED and "GEMINI_API_KEY" in status.reason
    assert caught.value.kind is ErrorKind.NOT_CONFIGURED
    assert not respx.calls


def test_a_key_of_the_wrong_shape_is_warned_about_without_showing_it() -> None:
    assert GeminiSettings(api_key="AIzaSyFAKE-patcode-test-key-01234567890").config_warnings() == []
    warnings = GeminiSettings(api_key="sk-proj-not-a-google-key").config_warnings()
    assert warnings == ["GEMINI_API_KEY no parece una clave de API de Google (debería empezar con 'AIza'). Verifica tu GEMINI_API_KEY"]


def test_defaults() -> None:
    settings = GeminiSettings()
    assert (settings.model, settings.base_url, settings.api_key) == (DEFAULT_MODEL, BASE, None)


@pytest.mark.parametrize(
    ("base_url", "model", "url"),
    [
        (f"{BASE}/v1beta", DEFAULT_MODEL, GENERATE),  # a base URL that already names the version
        ("", DEFAULT_MODEL, GENERATE),  # an empty GEMINI_BASE_URL means "no base URL of my own": Google's
        (BASE, f"models/{DEFAULT_MODEL}", GENERATE),  # a model written as its resource name
        ("https://proxy.example.test/gemini", "gemini-2.5-flash-lite",
         "https://proxy.example.test/gemini/v1beta/models/gemini-2.5-flash-lite:generateContent"),
    ],
)
@respx.mock
async def test_addresses(monkeypatch: pytest.MonkeyPatch, base_url: str, model: str, url: str) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "gemini")
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyFAKE-patcode-test-key-01234567890")
    monkeypatch.setenv("GEMINI_BASE_URL", base_url)
    monkeypatch.setenv("GEMINI_MODEL", model)
    route = respx.post(url).mock(return_value=httpx.Response(200, json=REPLY))
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        assert (await manager.complete("hola")).text
    assert route.called


# -- availability: GET /v1beta/models/{model} --------------------------------------------

# models.get answers a Model (https://ai.google.dev/api/models#Model).
MODEL = {
    "name": f"models/{DEFAULT_MODEL}",
    "version": "001",
    "displayName": "Gemini 3.5 Flash-Lite",
    "inputTokenLimit": 1048576,
    "outputTokenLimit": 65536,
    "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
    "temperature": 1,
    "topP": 0.95,
    "topK": 64,
    "maxTemperature": 2,
    "thinking": True,
}


@respx.mock
async def test_availability_asks_for_the_model_without_spending_tokens(manager: LLMManager, key: str) -> None:
    route = respx.get(MODEL_URL).mock(return_value=httpx.Response(200, json=MODEL))
    status = await manager.availability("gemini")
    assert status.available and status.models == (DEFAULT_MODEL,)
    assert route.calls.last.request.headers["x-goog-api-key"] == key and key not in str(route.calls.last.request.url)


@pytest.mark.parametrize(
    ("response", "kind", "suggestion"),
    [
        (httpx.Response(404, json=google_error(404, "NOT_FOUND", f"models/{DEFAULT_MODEL} is not found for API version v1beta, "
                                               "or is not supported for getModel.")),
         ErrorKind.MODEL_NOT_FOUND, "https://ai.google.dev/gemini-api/docs/models"),
        (httpx.Response(400, json=google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                               error_info("API_KEY_INVALID"))),
         ErrorKind.AUTHENTICATION, "https://aistudio.google.com/apikey"),
        (httpx.Response(200, json={**MODEL, "supportedGenerationMethods": ["embedContent"]}),
         ErrorKind.MODEL_NOT_FOUND, "GEMINI_MODEL"),
        (httpx.Response(200, text="<html>captive portal</html>", headers={"content-type": "text/html"}),
         ErrorKind.MALFORMED_RESPONSE, "GEMINI_BASE_URL"),
    ],
)
@respx.mock
async def test_availability_says_what_is_wrong(manager: LLMManager, response: httpx.Response, kind: ErrorKind, suggestion: str) -> None:
    respx.get(MODEL_URL).mock(return_value=response)
    status = await manager.availability("gemini")
    assert not status.available and status.kind is kind and suggestion in status.suggestion


@respx.mock
async def test_availability_of_an_unreachable_server(manager: LLMManager) -> None:
    respx.get(MODEL_URL).mock(side_effect=httpx.ConnectError("refused"))
    status = await manager.availability("gemini")
    assert not status.available and status.kind is ErrorKind.UNREACHABLE


# -- prices and messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gemini-3.5-flash-lite", (0.30, 2.50)),
        ("gemini-3.5-flash-lite-preview-09-2026", (0.30, 2.50)),  # the longer pattern wins over gemini-3.5-flash*
        ("gemini-3.5-flash", (1.50, 9.00)),
        ("gemini-2.5-flash-lite", (0.10, 0.40)),
        ("gemini-2.5-flash", (0.30, 2.50)),
        ("gemini-3.1-pro-preview", (2.00, 12.00)),
        ("gemini-3.8-flash", (0.75, 3.75)),
        ("gemma-4-27b-it", None),  # unknown: cost unknown, never 0
    ],
)
def test_prices_by_pattern(model: str, price: tuple[float, float] | None) -> None:
    found = PriceBook({"gemini": prices(date(2026, 11, 26))}).price("gemini", model)
    assert (None if found is None else (found.input_per_million, found.output_per_million)) == price


def test_gemini_38_flash_price_changes_on_new_year() -> None:
    assert prices(date(2026, 12, 31))["gemini-3.8-flash*"].output_per_million == 3.75
    assert prices(date(2027, 1, 1))["gemini-3.8-flash*"].output_per_million == 7.50


def test_catalogue_has_the_same_keys_and_fields_in_both_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MESSAGES.keys("es") == MESSAGES.keys("en")
    for key in MESSAGES.keys("es"):
        fields = [{f for _, f, _, _ in string.Formatter().parse(MESSAGES.languages[lang][key]) if f} for lang in ("es", "en")]
        assert fields[0] == fields[1], key
    monkeypatch.setenv("PATCODE_LANG", "en")
    assert MESSAGES.t("wait", seconds="3.0") == "Gemini asks to wait 3.0s before retrying"


@respx.mock
async def test_english_messages(manager: LLMManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LANG", "en")
    respx.post(GENERATE).mock(return_value=httpx.Response(400, json=google_error(
        400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", error_info("API_KEY_INVALID"))))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert str(caught.value) == (
        "Gemini refused the API key: API key not valid. Please pass a valid API key. "
        "Check GEMINI_API_KEY: create or copy a key at https://aistudio.google.com/apikey"
    )
