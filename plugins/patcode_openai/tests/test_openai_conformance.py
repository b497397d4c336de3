"""OpenAI through the kit's conformance suite (patcode_core.testing), with the payloads of the API reference."""

from __future__ import annotations

from openai_payloads import SUCCESS, USAGE_CHUNK, chunk

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase

KEY = "sk-proj-kitconformance0123456789abcdefZq8x"



def error(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}




class TestOpenAIConformance(ConformanceSuite):
    description = ProviderDescription(
        plugin="openai",
        key=KEY,
        path="/chat/completions",
        success=WireCase(json=SUCCESS),
        expected_text="The image shows a wooden boardwalk path running through a lush green field.",
        expected_usage=Usage(1117, 46),
        # The API answers with the dated snapshot; the price of gpt-4o-mini* covers it.
        cost=(1117 * 0.15 + 46 * 0.60) / 1_000_000,
        errors={
            ErrorKind.AUTHENTICATION: [
                WireCase(401, json=error(f"Incorrect API key provided: sk-proj-****{KEY[-4:]}. You can find your API key at "
                                         "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")),
                WireCase(403, json=error("Country, region, or territory not supported", "request_forbidden",
                                         "unsupported_country_region_territory")),
            ],
            ErrorKind.MODEL_NOT_FOUND: WireCase(404, json=error("The model `gpt-9` does not exist or you do not have access to it.",
                                                                "invalid_request_error", "model_not_found")),
            ErrorKind.RATE_LIMIT: [
                WireCase(429, json=error("Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): "
                                         "Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests", "rate_limit_exceeded"),
                         retry_after=20.0, label="message"),
                WireCase(429, json=error("Rate limit reached for gpt-4o-mini on tokens per min (TPM).", "tokens", "rate_limit_exceeded"),
                         headers={"retry-after-ms": "800"}, label="retry-after-ms"),
            ],
            ErrorKind.QUOTA_EXHAUSTED: WireCase(429, json=error(
                "You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "insufficient_quota")),
            ErrorKind.CONTEXT_LENGTH: WireCase(400, json=error(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. "
                "Please reduce the length of the messages.", "invalid_request_error", "context_length_exceeded", "messages")),
            ErrorKind.CONTENT_FILTER: WireCase(400, json=error("Your request was rejected as a result of our safety system.",
                                                               "invalid_request_error", "content_policy_violation")),
            ErrorKind.BAD_REQUEST: WireCase(400, json=error("Invalid value for 'temperature': must be between 0 and 2.",
                                                            "invalid_request_error", "invalid_value", "temperature")),
            ErrorKind.SERVER_ERROR: [
                WireCase(500, json=error("The server had an error while processing your request. Sorry about that!", "server_error", None)),
                WireCase(503, json=error("The engine is currently overloaded, please try again later", "server_error", None)),
            ],
            ErrorKind.ENDPOINT_NOT_FOUND: WireCase(404, body="404 page not found", label="wrong-base-url"),
        },
        stream=StreamCase(
            events=[chunk("", role="assistant"), chunk("Hello"), chunk("!"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]"],
            cut_after=2,
            text="Hello!",
            usage=Usage(9, 2),
        ),
    )
