"""``patcode serve`` as a real process, driven by the official OpenAI Python SDK, over loopback fake providers.

openai answers from ``provider_server`` and groq, its fallback, from ``fallback_server``; both are real HTTP
servers whose faults the tests script. The SDK's own retries are off, so each status is seen as sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_process import GatewayProcess, loopback_provider_env

from tests.fakes.server_process import FakeProviderServer

FALLBACK_REPLY = "FALLBACK PROVIDER TEXT"
SDK_KEY = "not-checked-without-a-server-token"


@pytest.fixture(scope="module")
def servers(server_processes: tuple[FakeProviderServer, FakeProviderServer]) -> tuple[FakeProviderServer, FakeProviderServer]:
    return server_processes


@pytest.fixture(scope="module")
def gateway(servers: tuple[FakeProviderServer, FakeProviderServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    primary, fallback = servers
    env = loopback_provider_env(openai=primary.url, groq=fallback.url, LLM_FALLBACK_ORDER="openai,groq",
                                LLM_HEDGE="off", LLM_BREAKER_THRESHOLD="1000")
    with GatewayProcess(tmp_path_factory.mktemp("sdk"), env=env, lang="en") as running:
        yield running


@pytest.fixture
def client(gateway: GatewayProcess, servers: tuple[FakeProviderServer, FakeProviderServer]) -> Iterator[openai.OpenAI]:
    for server in servers:
        server.reset()
    servers[1].configure(reply=FALLBACK_REPLY)
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=SDK_KEY, max_retries=0, timeout=30) as sdk:
        yield sdk


ASK: list[Any] = [{"role": "user", "content": "hola"}]


def test_a_plain_answer(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=ASK)
    completion = raw.parse()
    assert completion.choices[0].message.content == "api says: hola"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "openai/gpt-4o-mini"
    assert completion.usage is not None and completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert raw.headers["x-patcode-provider"] == "openai" and raw.headers["x-patcode-fallback"] == "false"


def test_a_streamed_answer_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="openai", messages=ASK, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "api says: hola"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_provider_down_falls_back_and_says_so(client: openai.OpenAI, servers: tuple[FakeProviderServer, ...]) -> None:
    servers[0].fault("chat", {"type": "http", "status": 503, "body": {"error": {"message": "overloaded"}}, "always": True})
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=ASK)
    assert raw.parse().choices[0].message.content == FALLBACK_REPLY
    assert raw.headers["x-patcode-provider"] == "groq" and raw.headers["x-patcode-fallback"] == "true"


def test_a_stream_whose_provider_resets_before_the_first_token_falls_back_unseen(
    client: openai.OpenAI, servers: tuple[FakeProviderServer, ...]
) -> None:
    servers[0].fault("chat", {"type": "reset", "always": True})
    with client.chat.completions.with_streaming_response.create(model="auto", messages=ASK, stream=True) as response:
        assert response.headers["x-patcode-provider"] == "groq"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)
    assert text == FALLBACK_REPLY


def test_a_stream_cut_after_text_raises_in_the_sdk_and_never_mixes_providers(
    client: openai.OpenAI, servers: tuple[FakeProviderServer, ...]
) -> None:
    servers[0].fault("chat", {"type": "stream", "mode": "cut", "after": 2})
    seen = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="auto", messages=ASK, stream=True):
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content or "")
    text = "".join(seen)
    assert text and "api says: hola".startswith(text) and text != "api says: hola"  # openai's words only, never groq's
    assert "'openai'" in raised.value.message


def test_every_route_rate_limited_is_a_429_with_retry_after(client: openai.OpenAI, servers: tuple[FakeProviderServer, ...]) -> None:
    for server in servers:
        server.fault("chat", {"type": "http", "status": 429, "headers": {"retry-after": "3"},
                              "body": {"error": {"message": "Rate limit reached", "type": "requests",
                                                 "code": "rate_limit_exceeded"}}, "always": True})
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="auto", messages=ASK)
    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "3"
    assert {failure["provider"] for failure in raised.value.body["failures"]} == {"openai", "groq"}  # type: ignore[index]


def test_every_provider_failing_is_a_502_listing_each_cause(client: openai.OpenAI, servers: tuple[FakeProviderServer, ...]) -> None:
    for server in servers:
        server.fault("chat", {"type": "http", "status": 500, "body": {"error": {"message": "boom"}}, "always": True})
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="auto", messages=ASK)
    assert raised.value.status_code == 502
    assert "openai" in raised.value.message and "groq" in raised.value.message


def test_a_fallback_unreachable_is_a_503(gateway: GatewayProcess, tmp_path: Path, servers: tuple[FakeProviderServer, ...]) -> None:
    from tests.fakes.server_process import closed_port_url

    env = loopback_provider_env(openai=closed_port_url(), LLM_FALLBACK_ORDER="openai", LLM_HEDGE="off")
    with GatewayProcess(tmp_path, env=env, lang="en") as closed, \
            openai.OpenAI(base_url=f"{closed.url}/v1", api_key=SDK_KEY, max_retries=0) as sdk:
        with pytest.raises(openai.APIStatusError) as raised:
            sdk.chat.completions.create(model="auto", messages=ASK)
    assert raised.value.status_code == 503


def test_client_errors_map_to_the_sdk_s_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody/none", messages=ASK)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="auto", messages=ASK, tools=[{"type": "function", "function": {"name": "f"}}])
    assert raised.value.param == "tools"  # type: ignore[attr-defined]


def test_models_list(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "auto"
    assert {"openai", "openai/gpt-4o-mini", "groq"} <= set(ids)


def test_the_history_and_metrics_count_what_the_sdk_did(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    client.chat.completions.create(model="groq", messages=ASK)
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'patcode_requests_total{model="openai/gpt-oss-120b",outcome="success",provider="groq"}' in metrics
