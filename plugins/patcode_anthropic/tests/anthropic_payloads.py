"""Anthropic payloads shared by the wire tests and the kit's conformance test.

From the Messages API reference ("Create a Message") and the errors
reference. Test modules cannot import each other under
``--import-mode=importlib``; this folder's conftest puts it on ``sys.path``.
"""

from __future__ import annotations

KEY = "sk-ant-api03-unittestkey0123456789abcdefWXYZ-0123456789AA"
REQUEST_ID = "req_011CSHoEeqs5C35K2UUqR7Fy"

# The 200 response of the Messages API reference ("Create a Message").
MESSAGE = {
    "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "model": "claude-sonnet-4-5-20250929",
    "role": "assistant",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "type": "message",
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}


def anthropic_error(type_: str, message: str, request_id: str | None = REQUEST_ID) -> dict:
    """The error shape of the errors reference: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    body: dict = {"type": "error", "error": {"type": type_, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


# The response shape of "Handle streaming refusals", as a whole message.
REFUSAL = {
    **MESSAGE,
    "content": [{"type": "text", "text": "Hello.."}],
    "stop_reason": "refusal",
    "stop_details": {
        "type": "refusal",
        "category": "cyber",
        "explanation": "This request was declined because it could enable cyber harm.",
    },
}
