"""Gemini through the kit's conformance suite (patcode_core.testing).

The plain answer and the error bodies come from gemini_payloads.py, shared
with test_gemini_wire.py; the stream events are those of test_gemini_stream.py.
Their sources (ai.google.dev, the v1beta proto and the public issue threads
that quote real error bodies) are named in the wire and stream tests.

The stream's path differs from the plain one (``:streamGenerateContent``
against ``:generateContent``): ``StreamCase.path`` says so. What the kit
cannot say (left to test_gemini_stream.py, not worked around):

- the stream needs ``?alt=sse``: the kit's routes match method, host and
  path and leave the query string free, so the suite neither requires nor
  checks it (test_gemini_stream.py does: ``str(request.url) == f"{STREAM}?alt=sse"``);
- errors of the stream (a refused stream, an error list, an error or a
  SAFETY finish mid-stream): error cases are only played to ``complete``.
"""

from __future__ import annotations

import json

from gemini_payloads import REPLY, error_info, event, google_error, quota_failure, retry_info, sse

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase

#: Shaped like a Google API key ("AIza" + 35 characters, so no shape warning), recognisable, not a real key.
KEY = "AIzaSyKIT-patcode-conformance-01234Zq8x"
MODEL = "gemini-3.5-flash-lite"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"  # sent with ?alt=sse, which the kit does not match on

# -- generateContent: the payloads of test_gemini_wire.py (gemini_payloads.py) ---------------------


def with_finish(reason: str) -> dict:
    body = json.loads(json.dumps(REPLY))
    body["candidates"][0]["finishReason"] = reason
    return body


def filtered(reason: str) -> dict:
    """A candidate cut by one of Google's content filters (Candidate.FinishReason)."""
    return {"candidates": [{"content": {"parts": [{"text": "Sure, here"}], "role": "model"}, "finishReason": reason, "index": 0,
                            "safetyRatings": [
                                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
                                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}}


HTML = {"content-type": "text/html"}
RATE_LIMIT_MESSAGE = "Resource has been exhausted (e.g. check quota)."

# -- streamGenerateContent?alt=sse (as in test_gemini_stream.py) ------------------------------


# Cumulative usage on every event; thinking counted only once it is done; no [DONE]: the last event has finishReason.
WHOLE = [
    event("The", usage={"promptTokenCount": 8, "totalTokenCount": 96, "thoughtsTokenCount": 88}),
    event(" sky is", usage={"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 99, "thoughtsTokenCount": 88}),
    event(" blue.", finish="STOP",
          usage={"promptTokenCount": 8, "candidatesTokenCount": 5, "totalTokenCount": 101, "thoughtsTokenCount": 88}),
]


class TestGeminiConformance(ConformanceSuite):
    description = ProviderDescription(
        plugin="gemini",
        key=KEY,
        # Pinned: the payloads name this model, and its price is the one checked.
        env={"GEMINI_MODEL": MODEL},
        path=GENERATE,
        success=WireCase(json=REPLY),
        expected_text="AI learns patterns from examples.",
        # Thinking is billed as output: 7 visible + 395 thinking tokens.
        expected_usage=Usage(12, 7 + 395),
        finish_reason="stop",
        cost=(12 * 0.30 + 402 * 2.50) / 1_000_000,  # gemini-3.5-flash-lite*: $0.30 / $2.50 per million
        errors={
            ErrorKind.RATE_LIMIT: [
                # googleapis/python-genai#2044: per-minute and per-day quotas, RetryInfo 47s (no Retry-After header).
                WireCase(429, json=google_error(
                    429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details. "
                    "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                    quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                                  "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                    retry_info("47s")), retry_after=47.0, label="RetryInfo"),
                # The longer of Retry-After and RetryInfo.retryDelay.
                WireCase(429, json=google_error(429, "RESOURCE_EXHAUSTED", RATE_LIMIT_MESSAGE, retry_info("37s")),
                         headers={"Retry-After": "60"}, label="Retry-After-longer"),
                WireCase(429, json=google_error(429, "RESOURCE_EXHAUSTED", RATE_LIMIT_MESSAGE, retry_info("37s")),
                         headers={"Retry-After": "5"}, retry_after=37.0, label="RetryInfo-longer"),
                # gke-labs/gemini-for-kubernetes-development#1215: no RetryInfo at all.
                WireCase(429, json=google_error(429, "RESOURCE_EXHAUSTED", RATE_LIMIT_MESSAGE), label="bare"),
                WireCase(429, body="Too Many Requests", headers={"Retry-After": "3"}, label="proxy"),
            ],
            ErrorKind.QUOTA_EXHAUSTED: [
                # Only a daily quota violated: waiting seconds cannot help.
                WireCase(429, json=google_error(
                    429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
                    quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), retry_info("20s")), label="per-day-only"),
                WireCase(402, json=google_error(402, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted.")),
                # poenl/gemini-api#4
                WireCase(400, json=google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
                         label="FAILED_PRECONDITION-location"),
                WireCase(400, json=google_error(400, "FAILED_PRECONDITION", "Gemini API free tier is not available in your "
                                                "country. Please enable billing on your project in Google AI Studio."),
                         label="FAILED_PRECONDITION-billing"),
            ],
            ErrorKind.AUTHENTICATION: [
                # continuedev/continue#8516: the key is refused with 400, not 401.
                WireCase(400, json=google_error(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", error_info("API_KEY_INVALID"),
                    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                     "message": "API key not valid. Please pass a valid API key."}), label="API_KEY_INVALID"),
                # google-gemini/gemini-cli#25198
                WireCase(400, json=google_error(400, "INVALID_ARGUMENT", "API Key not found. Please pass a valid API key.",
                                                error_info("API_KEY_INVALID")), label="API-key-not-found"),
                # continuedev/continue#10513
                WireCase(403, json=google_error(403, "PERMISSION_DENIED",
                                                "Your API key was reported as leaked. Please use another API key."),
                         label="leaked-key"),
                # continuedev/continue#12781
                WireCase(403, json=google_error(
                    403, "PERMISSION_DENIED", "Requests to this API generativelanguage.googleapis.com method "
                    "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.",
                    error_info("API_KEY_SERVICE_BLOCKED", consumer="projects/177838813423")), label="service-blocked"),
                # google/generative-ai-docs#356: a suspended key quoted in the message (and in ErrorInfo, DebugInfo).
                WireCase(403, json=google_error(
                    403, "PERMISSION_DENIED", f"Permission denied: Consumer 'api_key:{KEY}' has been suspended.",
                    error_info("CONSUMER_SUSPENDED", consumer="projects/578829824020", containerInfo=f"api_key:{KEY}"),
                    {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": f"Invalid API key: {KEY}"}),
                    label="key-quoted"),
                WireCase(401, body="Unauthorized", label="proxy"),
            ],
            ErrorKind.MODEL_NOT_FOUND: WireCase(404, json=google_error(  # google/adk-python#200
                404, "NOT_FOUND", "models/gemini-3.5-flash-lite is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods."),
                label="model"),
            ErrorKind.ENDPOINT_NOT_FOUND: [
                WireCase(404, body="<html><title>404 Not Found</title></html>", headers=HTML, label="html"),
                WireCase(302, headers={"location": "https://elsewhere.test/x"}, label="redirect"),
            ],
            ErrorKind.CONTEXT_LENGTH: WireCase(400, json=google_error(  # google-gemini/gemini-cli#4231
                400, "INVALID_ARGUMENT",
                "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576)."),
                label="context-too-long"),
            ErrorKind.BAD_REQUEST: WireCase(
                400, json=google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
                label="INVALID_ARGUMENT"),
            ErrorKind.CONNECTION: WireCase(499, json=google_error(499, "CANCELLED", "The operation was cancelled.")),
            ErrorKind.SERVER_ERROR: [
                # google-gemini/gemini-cli#3665
                WireCase(500, json=google_error(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                                "https://developers.generativeai.google/guide/troubleshooting")),
                # lightpanda-io/browser#2915
                WireCase(503, json=google_error(503, "UNAVAILABLE", "This model is currently experiencing high demand. Spikes in "
                                                "demand are usually temporary. Please try again later.")),
                WireCase(504, json=google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")),
                WireCase(502, body="<html><title>502 Bad Gateway</title></html>", headers=HTML, label="html"),
                WireCase(200, json=google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
                         label="in-band"),
            ],
            ErrorKind.CONTENT_FILTER: [
                *[WireCase(200, json=filtered(reason), label=reason)
                  for reason in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII")],
                # PromptFeedback.block_reason: "the prompt was blocked and no candidates are returned".
                WireCase(200, json={"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                    "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10},
                                    "modelVersion": "gemini-3.5-flash-lite"}, label="blocked-prompt"),
            ],
            ErrorKind.MALFORMED_RESPONSE: [
                WireCase(200, body="<html><body>Bad gateway</body></html>", headers=HTML, label="html"),
                WireCase(200, json={}, label="no-candidates"),
                WireCase(200, json=[REPLY], label="a-list"),  # the streaming shape, not generateContent's
                WireCase(200, json={"candidates": [{"content": {"parts": [{"text": "Hal"}], "role": "model"}, "index": 0}]},
                         label="no-finishReason"),
                WireCase(200, json={"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": "STOP"}]},
                         label="empty-STOP"),
                # OTHER is "Unknown reason": the text may be cut, so it is never passed off as whole.
                WireCase(200, json=with_finish("OTHER"), label="OTHER"),
                WireCase(200, json={"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]},
                         label="MALFORMED_FUNCTION_CALL"),
                # No visible text: thinking used maxOutputTokens (candidatesTokenCount is omitted, being 0).
                WireCase(200, json={"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
                                    "usageMetadata": {"promptTokenCount": 27, "totalTokenCount": 227, "thoughtsTokenCount": 200},
                                    "modelVersion": "gemini-3.5-flash-lite"}, label="thinking-used-budget"),
            ],
        },
        stream=StreamCase(
            events=[sse(item) for item in WHOLE],
            path=STREAM,
            cut_after=2,  # "The sky is" said, the finishReason event not yet
            text="The sky is blue.",
            usage=Usage(8, 5 + 88),
            finish_reason="stop",
        ),
    )
