"""Groq through the kit's conformance suite (patcode_core.testing), with the payloads of Groq's API reference."""

from __future__ import annotations

from groq_payloads import GROQ_SUCCESS as SUCCESS
from groq_payloads import LAST, chunk
from groq_payloads import groq_error as error

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase

KEY = "gsk_kitconformance0123456789abcdefZq8x"







class TestGroqConformance(ConformanceSuite):
    description = ProviderDescription(
        plugin="groq",
        key=KEY,
        path="/chat/completions",
        success=WireCase(json=SUCCESS),
        expected_text="Fast language models have gained significant attention.",
        expected_usage=Usage(18, 556),
        cost=(18 * 0.15 + 556 * 0.75) / 1_000_000,
        errors={
            ErrorKind.AUTHENTICATION: [
                WireCase(401, json=error("Invalid API Key", code="invalid_api_key")),
                WireCase(403, json=error("Forbidden", type_="permission_error")),
            ],
            ErrorKind.MODEL_NOT_FOUND: [
                WireCase(400, json=error(
                    "The model `llama-3.1-70b-versatile` has been decommissioned and is no longer supported. Please refer to "
                    "https://console.groq.com/docs/deprecations for a recommendation on which model to use instead.",
                    code="model_decommissioned"), label="decommissioned"),
                WireCase(404, json=error("The model `nope` does not exist or you do not have access to it.", code="model_not_found")),
            ],
            ErrorKind.RATE_LIMIT: WireCase(
                429,
                json=error("Rate limit reached for model `openai/gpt-oss-120b` in organization `org_01` service tier `on_demand` on "
                           "requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 2s.",
                           type_="requests", code="rate_limit_exceeded"),
                headers={"retry-after": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
            ),
            ErrorKind.CONTEXT_LENGTH: [
                WireCase(400, json=error("Please reduce the length of the messages or completion.", code="context_length_exceeded")),
                WireCase(413, json=error("Request Entity Too Large", code="request_too_large")),
            ],
            ErrorKind.BAD_REQUEST: WireCase(422, json=error("Unprocessable Entity")),
            ErrorKind.SERVER_ERROR: [
                WireCase(498, json=error("Flex tier capacity exceeded", code="capacity_exceeded")),
                WireCase(500, json=error("Internal Server Error", type_="internal_server_error")),
                WireCase(502, body="<html><body>502 Bad Gateway</body></html>", headers={"content-type": "text/html"}),
                WireCase(503, json=error("Service Unavailable", type_="internal_server_error")),
            ],
        },
        stream=StreamCase(
            events=[
                {**chunk(""), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]},
                chunk("Fast"), chunk(" models"), chunk("."), LAST, "[DONE]",
            ],
            cut_after=3,
            text="Fast models.",
            usage=Usage(18, 3),
        ),
    )
