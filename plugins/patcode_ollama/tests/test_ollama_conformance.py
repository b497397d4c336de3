"""Ollama through the kit's conformance suite (patcode_core.testing), with the payloads of ollama's docs/api.md."""

from __future__ import annotations

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase

# The non-streaming chat response of ollama's docs/api.md (as in test_ollama_wire.py).
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


class TestOllamaConformance(ConformanceSuite):
    description = ProviderDescription(
        plugin="ollama",
        # No key is needed; OLLAMA_API_KEY (ollama.com, an authenticating proxy) is set so that a leak would show.
        key="ollama-kit-conformance-0123456789Zq8x",
        path="/api/chat",
        success=WireCase(json=CHAT),
        expected_text="Hello! How are you today?",
        expected_usage=Usage(26, 298),
        cost=0.0,  # a local server: ollama/* costs 0
        errors={
            ErrorKind.MODEL_NOT_FOUND: [
                WireCase(404, json={"error": "model 'qwen2.5-coder:1.5b' not found"}),
                WireCase(404, json={"error": 'model "qwen2.5-coder:1.5b" not found, try pulling it first'}),
            ],
            ErrorKind.BAD_REQUEST: WireCase(400, json={"error": "invalid options: num_predict"}),
            ErrorKind.SERVER_ERROR: [
                WireCase(500, json={"error": "llama runner process has terminated: signal: killed"}),
                WireCase(503, json={"error": "server busy, please try again.  maximum pending requests exceeded"}),
                WireCase(200, json={"error": "unexpected EOF"}, label="in-band"),
            ],
            ErrorKind.AUTHENTICATION: [WireCase(401, json={"error": "unauthorized"}), WireCase(403, json={"error": "forbidden"})],
            ErrorKind.RATE_LIMIT: [
                WireCase(429, json={"error": "too many requests"}),
                WireCase(429, json={"error": "too many requests"}, headers={"Retry-After": "7"}, label="retry-after"),
            ],
            ErrorKind.MALFORMED_RESPONSE: [
                WireCase(200, body="{not json", label="not-json"),
                WireCase(200, json={**CHAT, "done": False}, label="not-done"),
            ],
            ErrorKind.ENDPOINT_NOT_FOUND: WireCase(404, body="404 page not found", label="wrong-base-url"),
        },
        stream=StreamCase(
            events=[piece("The"), piece(" sky"), piece(" is blue."), DONE],
            format="ndjson",
            cut_after=2,
            text="The sky is blue.",
            usage=Usage(26, 282),
        ),
    )
