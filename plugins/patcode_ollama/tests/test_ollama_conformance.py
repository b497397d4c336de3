"""Ollama through the kit's conformance suite (patcode_core.testing), with the payloads of ollama's docs/api.md."""

from __future__ import annotations

from ollama_payloads import CHAT, DONE, piece

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase


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
