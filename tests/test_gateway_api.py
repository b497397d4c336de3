"""The gateway's OpenAI wire, routes, errors and access rules, in process over fake providers (httpx's ASGI transport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import FakeProvider, host_with

from patcode_core import hookimpl
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.gateway.app import create_app
from patcode_core.manager import LLMManager
from patcode_core.types import CompletionRequest, StreamChunk, Usage

KEY = "sk-gateway-sentinel-9f8e7d6c5b4a"
TOKEN = "a-long-server-token-0123456789"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "hola"}]}


class StreamingFake(FakeProvider):
    """A fake that streams ``pieces``, then ends, or breaks with ``error`` after them."""

    def __init__(self, name: str, pieces: list[str], error: ProviderError | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.pieces = pieces
        self.error = error

    @hookimpl
    async def provider_stream(self, provider: str, request: CompletionRequest, context: Any) -> AsyncIterator[StreamChunk]:
        self.calls.append(request)
        for piece in self.pieces:
            yield StreamChunk(text=piece)
        if self.error is not None:
            raise self.error
        yield StreamChunk(finish_reason="stop", usage=Usage(5, len(self.pieces)), done=True)


def failing(kind: ErrorKind, provider: str = "a", **kwargs: Any) -> Any:
    def behaviour(request: CompletionRequest) -> Any:
        raise ProviderError(provider, kind, f"falla {kind.value}", **kwargs)

    return behaviour


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATCODE_HOME", str(tmp_path))
    monkeypatch.setenv("PATCODE_LANG", "en")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_HEDGE", "off")
    monkeypatch.chdir(tmp_path)


def client_for(*providers: FakeProvider, token: str | None = None, max_body: int = 4096, **env: str) -> httpx.AsyncClient:
    manager = LLMManager(host=host_with(*providers), env_file=None)
    app = create_app(manager, token=token, max_body=max_body)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8787")


def sse_data(text: str) -> list[Any]:
    return [line[6:] if line[6:] == "[DONE]" else json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_plain_answer_follows_openai_and_names_who_answered(env: None) -> None:
    async with client_for(FakeProvider("a"), FakeProvider("b")) as client:
        response = await client.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion" and isinstance(body["created"], int)
    assert body["model"] == "a/m1"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "a answers", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert response.headers["x-patcode-provider"] == "a"
    assert response.headers["x-patcode-model"] == "m1"
    assert response.headers["x-patcode-fallback"] == "false"


@pytest.mark.parametrize(("model", "provider", "asked"), [
    ("auto", "a", "m1"), ("b", "b", "m1"), ("b/big-model", "b", "big-model"), ("B/big-model", "b", "big-model"),
])
async def test_the_model_field_selects_the_route(env: None, model: str, provider: str, asked: str) -> None:
    a, b = FakeProvider("a"), FakeProvider("b")
    async with client_for(a, b) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "model": model})
    assert response.status_code == 200
    called = a if provider == "a" else b
    assert [request.model for request in called.calls] == [asked]
    assert response.headers["x-patcode-provider"] == provider


async def test_a_bare_model_name_goes_to_the_provider_configured_with_it(env: None) -> None:
    b = FakeProvider("b", model="coder-7b")
    async with client_for(FakeProvider("a"), b) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "model": "coder-7b"})
    assert response.status_code == 200 and response.headers["x-patcode-provider"] == "b"


async def test_an_unknown_route_is_a_404_in_openai_shape(env: None) -> None:
    async with client_for(FakeProvider("a")) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "model": "gpt-9"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model" and "gpt-9" in error["message"]
    assert set(error) >= {"message", "type", "param", "code"}


async def test_fallback_is_said_in_the_header(env: None) -> None:
    a = FakeProvider("a")
    a.behaviour = failing(ErrorKind.SERVER_ERROR)
    async with client_for(a, FakeProvider("b")) as client:
        response = await client.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "b answers"
    assert response.headers["x-patcode-fallback"] == "true" and response.headers["x-patcode-provider"] == "b"


@pytest.mark.parametrize(("kinds", "status", "code"), [
    ((ErrorKind.RATE_LIMIT, ErrorKind.RATE_LIMIT), 429, "rate_limit_exceeded"),
    ((ErrorKind.SERVER_ERROR, ErrorKind.MALFORMED_RESPONSE), 502, "provider_error"),
    ((ErrorKind.UNREACHABLE, ErrorKind.CONNECTION), 503, "no_provider_available"),
    ((ErrorKind.TIMEOUT, ErrorKind.TIMEOUT), 504, "timeout"),
    ((ErrorKind.CONTEXT_LENGTH, ErrorKind.CONTEXT_LENGTH), 400, "context_length_exceeded"),
])
async def test_when_every_provider_fails_the_status_says_why_and_lists_each_cause(
    env: None, kinds: tuple[ErrorKind, ErrorKind], status: int, code: str
) -> None:
    a, b = FakeProvider("a"), FakeProvider("b")
    a.behaviour = failing(kinds[0], retry_after=7.2)
    b.behaviour = failing(kinds[1], "b", retry_after=3.5)
    async with client_for(a, b) as client:
        response = await client.post("/v1/chat/completions", json=ASK)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    if status == 429:
        assert response.headers["retry-after"] == "4"
    if kinds[0] != ErrorKind.CONTEXT_LENGTH:  # a request no provider takes ends at the first
        assert [failure["provider"] for failure in error["failures"]] == ["a", "b"]
        assert all(failure["kind"] in {kind.value for kind in kinds} for failure in error["failures"])


async def test_no_provider_with_a_key_is_a_503(env: None) -> None:
    async with client_for(FakeProvider("a", key_env="A_API_KEY")) as client:
        response = await client.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 503
    assert "A_API_KEY" in response.json()["error"]["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "auto"}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({**ASK, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({**ASK, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
    ({**ASK, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({**ASK, "stop": ["\n"]}, "stop"),
    ({**ASK, "top_p": True}, "top_p"),
    ({**ASK, "frobnicate": 1}, "frobnicate"),
    ({**ASK, "temperature": 3}, "temperature"),
    ({**ASK, "temperature": "hot"}, "temperature"),
    ({**ASK, "max_tokens": 0}, "max_tokens"),
    ({**ASK, "n": 2}, "n"),
    ({**ASK, "stream": "yes"}, "stream"),
    ({**ASK, "stream_options": {"include_usage": True}}, "stream_options"),
])
async def test_a_request_patcode_cannot_honour_is_a_400_naming_the_field(env: None, body: dict[str, Any], param: str) -> None:
    a = FakeProvider("a")
    async with client_for(a) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert a.calls == []


async def test_neutral_values_and_text_parts_are_accepted(env: None) -> None:
    a = FakeProvider("a")
    body = {**ASK, "top_p": 1, "presence_penalty": 0, "user": "u1", "seed": 3, "stop": None, "max_completion_tokens": 9,
            "messages": [{"role": "developer", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "ho"}, {"type": "text", "text": "la"}]}]}
    async with client_for(a) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert [(m.role, m.content) for m in a.calls[0].messages] == [("system", "be brief"), ("user", "hola")]
    assert a.calls[0].max_tokens == 9


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_a_400(env: None, content: bytes) -> None:
    async with client_for(FakeProvider("a")) as client:
        response = await client.post("/v1/chat/completions", content=content)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


async def test_an_oversized_body_is_a_413_declared_or_not(env: None) -> None:
    big = json.dumps({**ASK, "messages": [{"role": "user", "content": "x" * 10_000}]}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000]

    a = FakeProvider("a")
    async with client_for(a) as client:
        declared = await client.post("/v1/chat/completions", content=big)
        chunked = await client.post("/v1/chat/completions", content=chunks())
    for response in (declared, chunked):
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert a.calls == []


async def test_a_stream_follows_openai_framing_with_usage(env: None) -> None:
    async with client_for(StreamingFake("a", ["Ho", "la"])) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == "a/m1" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hola"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


async def test_a_stream_without_include_usage_has_no_usage_field(env: None) -> None:
    async with client_for(StreamingFake("a", ["x"])) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "stream": True})
    chunks = sse_data(response.text)[:-1]
    assert all("usage" not in chunk for chunk in chunks)


async def test_a_failure_before_the_first_token_falls_back_unseen(env: None) -> None:
    broken = StreamingFake("a", [], ProviderError("a", ErrorKind.SERVER_ERROR, "503 from a"))
    async with client_for(broken, StreamingFake("b", ["from b"])) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "stream": True})
    assert response.status_code == 200
    assert response.headers["x-patcode-provider"] == "b" and response.headers["x-patcode-fallback"] == "true"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in sse_data(response.text)[:-1] if c["choices"])
    assert text == "from b"


async def test_a_stream_that_fails_everywhere_before_text_gets_an_http_status(env: None) -> None:
    a = StreamingFake("a", [], ProviderError("a", ErrorKind.RATE_LIMIT, "slow down", retry_after=2))
    async with client_for(a) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "stream": True})
    assert response.status_code == 429 and response.headers["retry-after"] == "2"


async def test_a_stream_broken_after_text_ends_with_an_error_event_never_text_of_two_providers(env: None) -> None:
    a = StreamingFake("a", ["first ", "half"], ProviderError("a", ErrorKind.CONNECTION, "connection reset"))
    b = StreamingFake("b", ["SECOND PROVIDER"])
    async with client_for(a, b) as client:
        response = await client.post("/v1/chat/completions", json={**ASK, "stream": True})
    events = sse_data(response.text)
    assert "[DONE]" not in events
    assert "SECOND PROVIDER" not in response.text
    assert "error" in events[-1] and events[-1]["error"]["code"] == "stream_interrupted"
    assert "'a'" in events[-1]["error"]["message"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in events[:-1] if c.get("choices"))
    assert text == "first half"


async def test_models_lists_auto_every_provider_and_its_models(env: None) -> None:
    async with client_for(FakeProvider("a"), FakeProvider("b", model="coder")) as client:
        response = await client.get("/v1/models")
    body = response.json()
    assert body["object"] == "list"
    ids = [item["id"] for item in body["data"]]
    assert ids == ["auto", "a", "a/m1", "b", "b/coder"]
    assert all(item["object"] == "model" and isinstance(item["created"], int) and item["owned_by"] for item in body["data"])


async def test_health_and_readiness(env: None) -> None:
    async with client_for(FakeProvider("a", key_env="A_API_KEY")) as client:
        health, ready = await client.get("/healthz"), await client.get("/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 503 and ready.json()["providers"] == {"a": "not_configured"}
    async with client_for(FakeProvider("a")) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_metrics_count_requests_failures_fallbacks_and_tokens(env: None) -> None:
    a = FakeProvider("a")
    a.behaviour = failing(ErrorKind.SERVER_ERROR)
    async with client_for(a, FakeProvider("b")) as client:
        await client.post("/v1/chat/completions", json=ASK)
        text = (await client.get("/metrics")).text
    assert 'patcode_requests_total{model="m1",outcome="failure",provider="a"} 1.0' in text
    assert 'patcode_failures_total{kind="server_error",model="m1",provider="a"} 1.0' in text
    assert 'patcode_fallbacks_total{from_provider="a",model="m1",provider="b"} 1.0' in text
    assert 'patcode_tokens_total{direction="output",model="m1",provider="b"} 4.0' in text
    assert 'patcode_latency_seconds_count{model="m1",provider="b"} 1.0' in text
    assert 'patcode_circuit_state{model="m1",provider="a"} 0.0' in text
    assert 'patcode_gateway_http_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in text
    assert "_created" not in text  # one series per label set, not two


async def test_unknown_paths_and_methods_answer_in_openai_shape(env: None) -> None:
    async with client_for(FakeProvider("a")) as client:
        missing, wrong = await client.get("/v1/nothing"), await client.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


async def test_with_a_token_every_endpoint_but_healthz_needs_it(env: None) -> None:
    async with client_for(FakeProvider("a"), token=TOKEN) as client:
        assert (await client.get("/healthz")).status_code == 200
        for path in ("/v1/models", "/metrics", "/readyz"):
            refused = await client.get(path)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["code"] == "invalid_api_key"
        wrong = await client.post("/v1/chat/completions", json=ASK, headers={"Authorization": "Bearer wrong-token-0123456789"})
        assert wrong.status_code == 401
        right = await client.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200


async def test_without_a_token_a_foreign_host_header_is_refused(env: None) -> None:
    async with client_for(FakeProvider("a")) as client:
        rebound = await client.get("/v1/models", headers={"Host": "attacker.example:8787"})
        local = await client.get("/v1/models", headers={"Host": "localhost:8787"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    assert local.status_code == 200


async def test_a_provider_key_never_reaches_a_response(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_API_KEY", KEY)
    a = FakeProvider("a", key_env="A_API_KEY")
    a.behaviour = failing(ErrorKind.AUTHENTICATION)

    def leaky(request: CompletionRequest) -> Any:
        raise ProviderError("a", ErrorKind.SERVER_ERROR, f"upstream said: bad key {KEY}")

    a.behaviour = leaky
    async with client_for(a, token=None) as client:
        responses = [
            await client.post("/v1/chat/completions", json=ASK),
            await client.post("/v1/chat/completions", json={**ASK, "stream": True}),
            await client.get("/v1/models"), await client.get("/metrics"), await client.get("/readyz"), await client.get("/"),
        ]
    assert responses[0].status_code == 502
    for response in responses:
        assert KEY not in response.text and KEY[-8:] not in response.text
        assert all(KEY not in value for value in response.headers.values())


@pytest.mark.parametrize("log_content", [False, True])
async def test_the_page_shows_recent_requests_with_content_only_when_logged(
    env: None, monkeypatch: pytest.MonkeyPatch, log_content: bool
) -> None:
    monkeypatch.setenv("LLM_LOG_CONTENT", "true" if log_content else "false")
    async with client_for(FakeProvider("a")) as client:
        await client.post("/v1/chat/completions", json={**ASK, "messages": [{"role": "user", "content": "secret plan 42"}]})
        page = await client.get("/")
    assert page.status_code == 200 and 'id="recent"' in page.text
    assert ("secret plan 42" in page.text) is log_content
    assert ("a answers" in page.text) is log_content


async def test_the_page_loads_nothing_from_elsewhere_and_forbids_it(env: None) -> None:
    import re

    async with client_for(FakeProvider("a")) as client:
        page = await client.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)
    assert "<script" not in page.text


async def test_the_page_shows_the_routing_strategy_and_the_spread(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    async with client_for(FakeProvider("a"), FakeProvider("b")) as client:
        for _ in range(4):
            assert (await client.post("/v1/chat/completions", json=ASK)).status_code == 200
        page = await client.get("/")
    assert 'id="spread"' in page.text and "round-robin" in page.text
    assert "a/m1 50.0%" in page.text and "b/m1 50.0%" in page.text
