"""Anthropic through the kit's conformance suite (patcode_core.testing), with the payloads of the API reference.

The payloads are copied from test_anthropic_wire.py and test_anthropic_stream.py (modules that
cannot be imported under pytest's importlib mode): the Messages API reference's "Create a Message"
answer, the errors reference's error bodies, and the streaming reference's "Basic streaming request"
(https://platform.claude.com/docs/en/api/messages, /api/errors, /build-with-claude/streaming, read 2026-11-26).
"""

from __future__ import annotations

from anthropic_payloads import KEY, MESSAGE, REFUSAL, REQUEST_ID, anthropic_error

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase, sse_event

#: The model of the reference's answer; it takes a temperature and is priced by ``claude-sonnet-4*``.
MODEL = "claude-sonnet-4-5-20250929"


def failed(status: int, type_: str, message: str, label: str = "", **headers: str) -> WireCase:
    """An error answer as the API sends it: the error body and its ``request-id`` header."""
    return WireCase(status, json=anthropic_error(type_, message), headers={"request-id": REQUEST_ID, **headers}, label=label)



# The streaming reference's "Basic streaming request", ping included (test_anthropic_stream.py).
MESSAGE_START = sse_event(
    "message_start",
    '{"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", '
    '"role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, '
    '"stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}',
)
BLOCK_START = sse_event(
    "content_block_start", '{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}'
)
PING = sse_event("ping", '{"type": "ping"}')
HELLO = sse_event(
    "content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}'
)
BANG = sse_event("content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}')
BLOCK_STOP = sse_event("content_block_stop", '{"type": "content_block_stop", "index": 0}')
MESSAGE_DELTA = sse_event(
    "message_delta",
    '{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}',
)
MESSAGE_STOP = sse_event("message_stop", '{"type": "message_stop"}')

BASIC = [MESSAGE_START, BLOCK_START, PING, HELLO, BANG, BLOCK_STOP, MESSAGE_DELTA, MESSAGE_STOP]


class TestAnthropicConformance(ConformanceSuite):
    description = ProviderDescription(
        plugin="anthropic",
        key=KEY,
        # The reference's model, rather than the default claude-sonnet-5-5: request and answer name the same model.
        env={"ANTHROPIC_MODEL": MODEL},
        path="/v1/messages",  # under ANTHROPIC_BASE_URL's default, https://api.anthropic.com
        success=WireCase(json=MESSAGE, headers={"request-id": REQUEST_ID}),
        expected_text="Hi! My name is Claude.",
        expected_usage=Usage(2095, 503),
        finish_reason="stop",  # stop_reason end_turn
        # claude-sonnet-4-5-20250929 is priced by the pattern claude-sonnet-4*: $3 / $15 per million.
        cost=(2095 * 3 + 503 * 15) / 1_000_000,
        errors={
            ErrorKind.RATE_LIMIT: [
                # The rate-limits reference: a 429 comes with retry-after (seconds) and the anthropic-ratelimit-* headers.
                failed(
                    429,
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization",
                    "retry-after",
                    **{"retry-after": "17", "anthropic-ratelimit-requests-remaining": "0"},
                ),
                # No retry-after: the plugin has no wait to report (the reset headers are checked in test_anthropic_wire.py).
                failed(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
            ],
            ErrorKind.AUTHENTICATION: [
                failed(401, "authentication_error", "invalid x-api-key"),
                # A server that echoes the key: the key must not reach the error either.
                failed(401, "authentication_error", f"invalid x-api-key: {KEY}", "echoes-key"),
                failed(403, "permission_error", "Your API key does not have permission to use the specified resource."),
            ],
            ErrorKind.MODEL_NOT_FOUND: failed(404, "not_found_error", "model: claude-sonnet-9-9"),
            ErrorKind.ENDPOINT_NOT_FOUND: [
                failed(404, "not_found_error", "The requested resource could not be found.", "resource"),
                WireCase(404, body="404 page not found", label="wrong-base-url"),
            ],
            ErrorKind.CONTEXT_LENGTH: [
                failed(400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", "prompt-too-long"),
                failed(
                    400,
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 187254 + 20000 > 200000, "
                    "decrease input length or `max_tokens` and try again",
                    "context-limit",
                ),
                failed(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
                WireCase(
                    413,
                    body="<html><head><title>413 Request Entity Too Large</title></head><body>cloudflare</body></html>",
                    headers={"content-type": "text/html"},
                    label="cloudflare",
                ),
            ],
            ErrorKind.QUOTA_EXHAUSTED: [
                failed(
                    400,
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. "
                    "Please go to Plans & Billing to upgrade or purchase credits.",
                    "credit-balance",
                ),
                failed(402, "billing_error", "Your organization is out of credits."),
            ],
            ErrorKind.BAD_REQUEST: [
                failed(400, "invalid_request_error", 'messages: roles must alternate between "user" and "assistant"', "invalid"),
                failed(400, "invalid_request_error", "temperature is deprecated for this model.", "temperature"),
                failed(
                    400,
                    "invalid_request_error",
                    "This model does not support assistant message prefill. The conversation must end with a user message.",
                    "prefill",
                ),
                failed(
                    400,
                    "invalid_request_error",
                    "max_tokens: 200000 > 64000, which is the maximum allowed number of output tokens for "
                    "claude-sonnet-4-5-20250929",
                    "max-tokens",
                ),
            ],
            ErrorKind.SERVER_ERROR: [
                failed(500, "api_error", "Internal server error"),
                failed(504, "timeout_error", "Request timed out"),
                failed(529, "overloaded_error", "Overloaded", "overloaded"),
                WireCase(502, body="<html>Bad gateway</html>", headers={"content-type": "text/html"}, label="html"),
            ],
            ErrorKind.CONTENT_FILTER: WireCase(200, json=REFUSAL, label="refusal"),
            ErrorKind.MALFORMED_RESPONSE: [
                WireCase(200, body="<html>proxy</html>", headers={"content-type": "text/html"}, label="html"),
                WireCase(200, json={"id": "msg_x", "type": "message"}, label="no-content"),
                WireCase(200, json={**MESSAGE, "content": []}, label="empty-content"),
            ],
        },
        stream=StreamCase(
            events=BASIC,
            # Everything but message_stop: the stop reason and the counts have come, the end marker has not.
            cut_after=len(BASIC) - 1,
            text="Hello!",
            usage=Usage(25, 15),
            finish_reason="stop",
            headers={"content-type": "text/event-stream; charset=utf-8", "request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"},
        ),
    )
