"""OpenAI's chat completion object of the API reference, shared by the tests.

Test modules cannot import each other under ``--import-mode=importlib``; this
folder's conftest puts it on ``sys.path`` so the wire tests and the kit's
conformance test import from here.
"""

from __future__ import annotations

# The chat completion object of the API reference.
SUCCESS = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The image shows a wooden boardwalk path running through a lush green field.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}


# The streaming reference's chat.completion.chunk, and its last chunk with the usage (stream_options.include_usage).
def chunk(content: str | None = None, finish: str | None = None, **delta: object) -> dict:
    """A chat.completion.chunk as in OpenAI's streaming reference."""
    body = dict(delta)
    if content is not None:
        body["content"] = content
    return {
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": body, "logprobs": None, "finish_reason": finish}],
    }


USAGE_CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini",
               "system_fingerprint": "fp_44709d6fcb", "choices": [],
               "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
