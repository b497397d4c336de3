"""Ollama's /api/chat payloads (docs/api.md), shared by the tests.

Test modules cannot import each other under ``--import-mode=importlib``; this
folder's conftest puts it on ``sys.path`` so the wire tests and the kit's
conformance test import from here.
"""

from __future__ import annotations

# The non-streaming chat response of ollama's docs/api.md.
CHAT = {
    "model": "qwen2.5-coder:1.5b",
    "created_at": "2023-12-12T14:13:43.416799Z",
    "message": {"role": "assistant", "content": "Hello! How are you today?"},
    "done_reason": "stop",
    "done": True,
    "total_duration": 5191566416,
    "load_duration": 2154458,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 383809000,
    "eval_count": 298,
    "eval_duration": 4799921000,
}


def piece(text: str) -> dict:
    """A line of ollama's /api/chat stream (docs/api.md)."""
    return {"model": "qwen2.5-coder:1.5b", "created_at": "2023-08-04T08:52:19.385406455-07:00",
            "message": {"role": "assistant", "content": text}, "done": False}


DONE = {"model": "qwen2.5-coder:1.5b", "created_at": "2023-08-04T19:22:45.499127Z", "message": {"role": "assistant", "content": ""},
        "done": True, "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 26,
        "prompt_eval_duration": 342546000, "eval_count": 282, "eval_duration": 4535599000}
