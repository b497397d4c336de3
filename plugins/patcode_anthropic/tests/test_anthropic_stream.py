"""Streamed messages ("stream": true): Anthropic's named server-sent events, with respx (no network).

The event sequence is the streaming reference's "Basic streaming request"
(https://platform.claude.com/docs/en/build-with-claude/streaming, read 2026-11-26), ping included;
the error event is its "Error events" example.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from anthropic_payloads import MESSAGE

from patcode_core.errors import ErrorKind, ProviderError, StreamInterruptedError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult, TextDelta

MESSAGES_URL = "https://api.anthropic.com/v1/messages"
KEY = "sk-ant-api03-unittestkey0123456789abcdefWXYZ-0123456789AA"

MESSAGE_START = (
    "message_start",
    '{"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", '
    '"role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, '
    '"stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}',
)
BLOCK_START = (
    "content_block_start",
    '{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}',
)
PING = ("ping", '{"type": "ping"}')
HELLO = ("content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}')
BANG = ("content_block_delta", '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}')
BLOCK_STOP = ("content_block_stop", '{"type": "content_block_stop", "index": 0}')
MESSAGE_DELTA = (
    "message_delta",
    '{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}',
)
MESSAGE_STOP = ("message_stop", '{"type": "message_stop"}')
OVERLOADED = ("error", '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}')

BASIC = (MESSAGE_START, BLOCK_START, PING, HELLO, BANG, BLOCK_STOP, MESSAGE_DELTA, MESSAGE_STOP)


def sse(*events: tuple[str, str]) -> bytes:
    return "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events).encode()


def streamed(*events: tuple[str, str], request_id: str = "req_018EeWyXxfu5pfWkrYcMdjWG") -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream; charset=utf-8", "request-id": request_id}, content=sse(*events)
    )


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "anthropic")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return LLMManager(host=PluginHost.discover(), env_file=None)


async def run(manager: LLMManager, **options: object) -> tuple[list[str], CompletionResult]:
    pieces, result = [], None
    async for event in manager.stream("Hello", **options):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, CompletionResult):
            result = event
    assert result is not None
    return pieces, result


@respx.mock
async def test_the_reference_event_sequence(manager: LLMManager) -> None:
    route = respx.post(MESSAGES_URL).mock(return_value=streamed(*BASIC))
    pieces, result = await run(manager)
    assert pieces == ["Hello", "!"] and result.text == "Hello!"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (25, 15)
    assert (result.finish_reason, result.model) == ("stop", "claude-sonnet-4-5-20250929")
    assert result.extra["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    body = json.loads(route.calls.last.request.content)
    assert body["stream"] is True and body["max_tokens"] and body["messages"] == [{"role": "user", "content": "Hello"}]
    assert route.calls.last.request.headers["anthropic-version"] == "2023-06-01"


@respx.mock
async def test_pings_anywhere_and_unknown_events_are_passed_over(manager: LLMManager) -> None:
    future = ("content_block_citation", '{"type": "content_block_citation", "index": 0}')
    respx.post(MESSAGES_URL).mock(
        return_value=streamed(
            PING, MESSAGE_START, PING, BLOCK_START, HELLO, PING, future, BANG, BLOCK_STOP, MESSAGE_DELTA, PING, MESSAGE_STOP
        )
    )
    _, result = await run(manager)
    assert result.text == "Hello!" and result.finish_reason == "stop"


@respx.mock
async def test_thinking_blocks_are_not_the_answer(manager: LLMManager) -> None:
    thinking = (
        (
            "content_block_start",
            '{"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}',
        ),
        (
            "content_block_delta",
            '{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me think"}}',
        ),
        (
            "content_block_delta",
            '{"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}',
        ),
        ("content_block_stop", '{"type": "content_block_stop", "index": 0}'),
    )
    text_block = (
        "content_block_start",
        '{"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}',
    )
    hello = (
        "content_block_delta",
        '{"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello!"}}',
    )
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, *thinking, text_block, hello, MESSAGE_DELTA, MESSAGE_STOP))
    _, result = await run(manager)
    assert result.text == "Hello!"


@pytest.mark.parametrize(
    ("stop_reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop"), ("pause_turn", "length")]
)
@respx.mock
async def test_stop_reason_of_the_message_delta(manager: LLMManager, stop_reason: str, finish: str) -> None:
    delta = (
        "message_delta",
        json.dumps(
            {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": 2}}
        ),
    )
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, BLOCK_STOP, delta, MESSAGE_STOP))
    _, result = await run(manager)
    assert result.finish_reason == finish and result.usage.output_tokens == 2


@respx.mock
async def test_an_error_event_after_text_breaks_the_answer(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, OVERLOADED))
    with pytest.raises(StreamInterruptedError) as caught:
        await run(manager, fallback=False)
    assert caught.value.partial_text == "Hello"
    failure = caught.value.failures[-1]
    assert failure.kind is ErrorKind.SERVER_ERROR and "Overloaded" in failure.message
    assert "request-id req_018EeWyXxfu5pfWkrYcMdjWG" in failure.message


@respx.mock
async def test_an_error_event_before_any_text(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, OVERLOADED))
    with pytest.raises(ProviderError) as caught:
        await run(manager, fallback=False)
    assert caught.value.kind is ErrorKind.SERVER_ERROR and caught.value.retryable


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("rate_limit_error", ErrorKind.RATE_LIMIT),
        ("api_error", ErrorKind.SERVER_ERROR),
        ("invalid_request_error", ErrorKind.BAD_REQUEST),
        ("authentication_error", ErrorKind.AUTHENTICATION),
        ("some_future_error", ErrorKind.SERVER_ERROR),  # a type added later: a failure on Anthropic's side
    ],
)
@respx.mock
async def test_error_events_of_every_type(manager: LLMManager, error_type: str, kind: ErrorKind) -> None:
    event = ("error", json.dumps({"type": "error", "error": {"type": error_type, "message": "something"}}))
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, event))
    with pytest.raises(ProviderError) as caught:
        await run(manager, fallback=False)
    assert caught.value.kind is kind and caught.value.status_code is None


@respx.mock
async def test_a_stream_without_message_stop_is_cut(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, BANG, BLOCK_STOP, MESSAGE_DELTA))
    with pytest.raises(StreamInterruptedError) as caught:
        await run(manager, fallback=False)
    assert caught.value.partial_text == "Hello!"
    assert caught.value.failures[-1].kind is ErrorKind.CONNECTION


@respx.mock
async def test_a_refusal_mid_stream_is_a_content_filter_error(manager: LLMManager) -> None:
    # "In the event stream, stop_details arrives on the message_delta event alongside stop_reason."
    refusal = (
        "message_delta",
        '{"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": null, "stop_details": '
        '{"type": "refusal", "category": "cyber", "explanation": "This request was declined because it could enable cyber harm."}}, '
        '"usage": {"output_tokens": 3}}',
    )
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, refusal, MESSAGE_STOP))
    with pytest.raises(StreamInterruptedError) as caught:
        await run(manager, fallback=False)
    failure = caught.value.failures[-1]
    assert failure.kind is ErrorKind.CONTENT_FILTER and "cyber harm" in failure.message


@respx.mock
async def test_an_error_status_before_the_stream(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(
        return_value=httpx.Response(529, json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    with pytest.raises(ProviderError) as caught:
        await run(manager, fallback=False)
    assert caught.value.kind is ErrorKind.SERVER_ERROR and caught.value.status_code == 529


@respx.mock
async def test_unreadable_events_are_skipped_then_the_stream_is_malformed(manager: LLMManager) -> None:
    garbage = ("content_block_delta", "{not json")
    respx.post(MESSAGES_URL).mock(
        return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, garbage, BANG, MESSAGE_DELTA, MESSAGE_STOP)
    )
    _, result = await run(manager)
    assert result.text == "Hello!"
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, BLOCK_START, HELLO, *([garbage] * 4), MESSAGE_STOP))
    with pytest.raises(StreamInterruptedError) as caught:
        await run(manager, fallback=False)
    assert caught.value.failures[-1].kind is ErrorKind.MALFORMED_RESPONSE


@respx.mock
async def test_a_server_that_ignores_stream_answers_whole(manager: LLMManager) -> None:
    respx.post(MESSAGES_URL).mock(return_value=httpx.Response(200, json=MESSAGE))
    _, result = await run(manager)
    assert result.text == "Hi! My name is Claude." and result.usage.output_tokens == 503


@respx.mock
async def test_the_stream_falls_back_after_an_overloaded_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With another provider in the route, a stream that fails before any text moves on."""
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "anthropic,ollama")
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "anthropic,ollama")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    respx.post(MESSAGES_URL).mock(return_value=streamed(MESSAGE_START, OVERLOADED))
    ollama_done = {
        "model": "qwen2.5-coder:1.5b",
        "created_at": "2023-08-04T19:22:45.499127Z",
        "message": {"role": "assistant", "content": "Hola"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 1,
    }
    respx.post("http://localhost:11434/api/chat").mock(
        return_value=httpx.Response(
            200, headers={"content-type": "application/x-ndjson"}, content=(json.dumps(ollama_done) + "\n").encode()
        )
    )
    _, result = await run(manager)
    assert result.provider == "ollama" and result.failures[0].provider == "anthropic"
    assert result.failures[0].kind is ErrorKind.SERVER_ERROR
