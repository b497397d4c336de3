"""Groq's chat completion (with x_groq) and its error body, shared by the tests.

Test modules cannot import each other under ``--import-mode=importlib``; this
folder's conftest puts it on ``sys.path`` so the wire tests and the kit's
conformance test import from here.
"""

from __future__ import annotations

# Response shape of Groq's chat completions reference, with its extra usage timings and x_groq.
GROQ_SUCCESS = {
    "id": "chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22",
    "object": "chat.completion",
    "created": 1730241104,
    "model": "openai/gpt-oss-120b",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Fast language models have gained significant attention."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "queue_time": 0.037493756,
        "prompt_tokens": 18,
        "prompt_time": 0.000680594,
        "completion_tokens": 556,
        "completion_time": 0.463333333,
        "total_tokens": 574,
        "total_time": 0.464013927,
    },
    "system_fingerprint": "fp_179b0f92c9",
    "x_groq": {"id": "req_01jbd6g2qdfw2adyrt2az8hz4w"},
}


def groq_error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    body: dict = {"error": {"message": message, "type": type_}}
    if code:
        body["error"]["code"] = code
    return body


# A chat.completion.chunk of Groq's stream.
def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> dict:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22", "object": "chat.completion.chunk", "created": 1730241104,
        "model": "openai/gpt-oss-120b", "system_fingerprint": "fp_179b0f92c9",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra,
    }


# Groq's last chunk carries the usage under x_groq.
LAST = chunk(finish="stop", x_groq={"id": "req_01jbd6g2qdfw2adyrt2az8hz4w", "usage": {
    "queue_time": 0.061, "prompt_tokens": 18, "prompt_time": 0.0007, "completion_tokens": 3,
    "completion_time": 0.01, "total_tokens": 21, "total_time": 0.0107}})
