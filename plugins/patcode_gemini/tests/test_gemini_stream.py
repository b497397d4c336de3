"""Gemini's streamGenerateContent?alt=sse, with respx (no network).

Each ``data:`` event is one GenerateContentResponse with the new text and the usage so far
(https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent, read 2026-11-26;
"With sse each stream chunk is a GenerateContentResponse object", google-gemini/cookbook
quickstarts/rest/Streaming_REST). There is no [DONE]: the last event carries finishReason.
Google's servers end SSE lines with CRLF.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from gemini_payloads import RESPONSE_ID, event, sse
from patcode_gemini.settings import DEFAULT_MODEL

from patcode_core.errors import ErrorKind, ProviderError, StreamInterruptedError
from patcode_core.manager import LLMManager
from patcode_core.types import CompletionResult, TextDelta

BASE = "https://generativelanguage.googleapis.com"
STREAM = f"{BASE}/v1beta/models/{DEFAULT_MODEL}:streamGenerateContent"
def streamed(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


async def collect(manager: LLMManager, **options: object) -> tuple[str, CompletionResult]:
    events = [item async for item in manager.stream("hola", **options)]
    text = "".join(item.text for item in events if isinstance(item, TextDelta))
    result = events[-1]
    assert isinstance(result, CompletionResult)
    return text, result


# Cumulative usage on every event; thinking counted only once it is done.
WHOLE = sse(
    event("The", usage={"promptTokenCount": 8, "totalTokenCount": 96, "thoughtsTokenCount": 88}),
    event(" sky is", usage={"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 99, "thoughtsTokenCount": 88}),
    event(" blue.", finish="STOP",
          usage={"promptTokenCount": 8, "candidatesTokenCount": 5, "totalTokenCount": 101, "thoughtsTokenCount": 88}),
)


@respx.mock
async def test_stream_pieces_usage_and_end(manager: LLMManager, key: str) -> None:
    route = respx.post(STREAM).mock(return_value=streamed(WHOLE))
    text, result = await collect(manager)
    request = route.calls.last.request
    assert str(request.url) == f"{STREAM}?alt=sse" and key not in str(request.url)
    assert request.headers["x-goog-api-key"] == key
    assert json.loads(request.content)["contents"] == [{"role": "user", "parts": [{"text": "hola"}]}]
    assert text == result.text == "The sky is blue."
    assert (result.finish_reason, result.model) == ("stop", "gemini-3.5-flash-lite")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (8, 5 + 88)
    assert result.extra["usage"]["thoughtsTokenCount"] == 88 and result.extra["response_id"] == RESPONSE_ID


@respx.mock
async def test_usage_sent_only_at_the_end_is_kept(manager: LLMManager) -> None:
    respx.post(STREAM).mock(return_value=streamed(sse(
        event("Hel"), event("lo"), event("", finish="STOP", usage={"promptTokenCount": 4, "candidatesTokenCount": 2,
                                                                   "totalTokenCount": 6}))))
    text, result = await collect(manager)
    assert text == "Hello" and (result.usage.input_tokens, result.usage.output_tokens) == (4, 2)


@respx.mock
async def test_max_tokens_ends_a_truncated_stream(manager: LLMManager) -> None:
    respx.post(STREAM).mock(return_value=streamed(sse(event("Once upon"), event(" a time", finish="MAX_TOKENS"))))
    _, result = await collect(manager)
    assert result.finish_reason == "length" and result.truncated


@respx.mock
async def test_events_after_the_finish_reason_are_not_waited_for(manager: LLMManager) -> None:
    respx.post(STREAM).mock(return_value=streamed(sse(event("Hi", finish="STOP"), event(" (never read)"))))
    text, _ = await collect(manager)
    assert text == "Hi"


@pytest.mark.parametrize(
    ("body", "kind", "said"),
    [
        # The body ends without any finishReason: a cut answer, never passed off as whole.
        (sse(event("The sky"), event(" is")), ErrorKind.CONNECTION, None),
        # A safety block mid-stream: "When streaming, content is empty if content filters block the output".
        (sse(event("Here is how to"), event(finish="SAFETY", safetyRatings=[
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}])),
         ErrorKind.CONTENT_FILTER, "SAFETY: HARM_CATEGORY_DANGEROUS_CONTENT"),
        (sse(event("As the poem goes"), event(finish="RECITATION")), ErrorKind.CONTENT_FILTER, "RECITATION"),
        # An error event inside the 200 stream.
        (sse(event("The sky"), {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                                          "status": "UNAVAILABLE"}}),
         ErrorKind.SERVER_ERROR, "The model is overloaded"),
        # An error written as plain JSON lines, not as an event (google-genai's _api_client copes with this too).
        (sse(event("The sky")) + b'{\r\n  "error": {\r\n    "code": 500,\r\n    "message": "An internal error has occurred.",'
                                 b'\r\n    "status": "INTERNAL"\r\n  }\r\n}\r\n',
         ErrorKind.SERVER_ERROR, "An internal error has occurred."),
        # OTHER is "Unknown reason": the text may be cut.
        (sse(event("The sky"), event(finish="OTHER")), ErrorKind.MALFORMED_RESPONSE, "OTHER"),
        (sse(event("The sky"), *["{not json"] * 4), ErrorKind.MALFORMED_RESPONSE, "4 unreadable"),
    ],
)
@respx.mock
async def test_a_stream_broken_after_text_is_never_whole(manager: LLMManager, body: bytes, kind: ErrorKind, said: str | None) -> None:
    respx.post(STREAM).mock(return_value=streamed(body))
    with pytest.raises(StreamInterruptedError) as caught:
        await collect(manager, fallback=False)
    assert caught.value.partial_text and caught.value.failures[-1].kind is kind
    if said is not None:
        assert said in caught.value.failures[-1].message


@respx.mock
async def test_a_blocked_prompt_stops_the_stream_before_any_text(manager: LLMManager) -> None:
    respx.post(STREAM).mock(return_value=streamed(sse({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]},
        "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10}, "modelVersion": "gemini-3.5-flash-lite"})))
    with pytest.raises(ProviderError) as caught:
        await collect(manager, fallback=False)
    assert caught.value.kind is ErrorKind.CONTENT_FILTER
    assert caught.value.message == "Gemini bloqueó el mensaje por sus filtros de contenido (SAFETY: HARM_CATEGORY_HARASSMENT)"


@respx.mock
async def test_one_unreadable_event_is_skipped(manager: LLMManager) -> None:
    respx.post(STREAM).mock(return_value=streamed(sse(event("Hel"), "{not json", event("lo", finish="STOP"))))
    text, result = await collect(manager)
    assert text == result.text == "Hello"


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        # streamGenerateContent errors may come as a list (continuedev/continue#8516, google-gemini/gemini-cli#6678).
        (httpx.Response(400, json=[{"error": {"code": 400, "message": "The input token count (1200293) exceeds the maximum "
                                              "number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}]),
         ErrorKind.CONTEXT_LENGTH),
        (httpx.Response(429, json={"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                             "status": "RESOURCE_EXHAUSTED", "details": [
                                                 {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}),
         ErrorKind.RATE_LIMIT),
        (httpx.Response(404, json={"error": {"code": 404, "message": f"models/{DEFAULT_MODEL} is not found for API version "
                                             "v1beta, or is not supported for streamGenerateContent.", "status": "NOT_FOUND"}}),
         ErrorKind.MODEL_NOT_FOUND),
    ],
)
@respx.mock
async def test_a_stream_refused_before_it_starts(manager: LLMManager, response: httpx.Response, kind: ErrorKind) -> None:
    respx.post(STREAM).mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await collect(manager, fallback=False)
    assert caught.value.kind is kind
    if kind is ErrorKind.RATE_LIMIT:
        assert caught.value.retry_after == 12.0


@respx.mock
async def test_a_json_array_instead_of_sse_still_streams(manager: LLMManager) -> None:
    # streamGenerateContent without alt=sse answers one JSON array of responses (a proxy may drop the parameter).
    respx.post(STREAM).mock(return_value=httpx.Response(200, json=[
        event("The sky"), event(" is blue.", finish="STOP", usage={"promptTokenCount": 8, "candidatesTokenCount": 5,
                                                                    "totalTokenCount": 13})]))
    text, result = await collect(manager)
    assert text == "The sky is blue." and result.usage.output_tokens == 5


@respx.mock
async def test_stream_connection_refused(manager: LLMManager) -> None:
    respx.post(STREAM).mock(side_effect=httpx.ConnectError("All connection attempts failed"))
    with pytest.raises(ProviderError) as caught:
        await collect(manager, fallback=False)
    assert caught.value.kind is ErrorKind.UNREACHABLE
