"""Gemini payloads shared by the wire tests and the kit's conformance test (sources in test_gemini_wire.py).

Test modules cannot import each other under ``--import-mode=importlib``; this
folder's conftest puts it on ``sys.path`` so both import from here.
"""

from __future__ import annotations

import json

from patcode_gemini.settings import DEFAULT_MODEL

# A generateContent answer of a thinking model: GenerateContentResponse with candidates[].content.parts[].text,
# finishReason, usageMetadata (thoughtsTokenCount is left out of candidatesTokenCount), modelVersion, responseId.
REPLY = {
    "candidates": [
        {
            "content": {"parts": [{"text": "AI learns patterns from examples."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12,
        "candidatesTokenCount": 7,
        "totalTokenCount": 414,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
        "thoughtsTokenCount": 395,
    },
    "modelVersion": "gemini-3.5-flash-lite",
    "responseId": "i5UmaYmWKrOvkdUPlaiEoAk",
}


def google_error(code: int, status: str, message: str, *details: dict) -> dict:
    """``google.rpc.Status`` as JSON, as the Gemini API sends it."""
    error: dict = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def error_info(reason: str, **metadata: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com", **metadata}}


def retry_info(delay: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(*quota_ids: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": quota_id,
         "quotaDimensions": {"location": "global", "model": DEFAULT_MODEL}} for quota_id in quota_ids]}


# streamGenerateContent?alt=sse: each event a GenerateContentResponse; Google ends its SSE lines with CRLF.
RESPONSE_ID = "uJUmae6XBZ6zkdUP6KO7-Ac"


def event(text: str | None = None, *, finish: str | None = None, usage: dict | None = None, **candidate: object) -> dict:
    """One GenerateContentResponse of a stream."""
    body: dict = {"candidates": [{"content": {"parts": [{"text": text}] if text is not None else [], "role": "model"},
                                  "index": 0, **candidate}],
                  "modelVersion": "gemini-3.5-flash-lite", "responseId": RESPONSE_ID}
    if finish is not None:
        body["candidates"][0]["finishReason"] = finish
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def sse(*events: object) -> bytes:
    """Events as Google frames them: CRLF line ends (a string goes as it is)."""
    return "".join(f"data: {item if isinstance(item, str) else json.dumps(item)}\r\n\r\n" for item in events).encode()
