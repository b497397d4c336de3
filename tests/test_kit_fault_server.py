"""The kit's FaultServer (issue 12): a real loopback server scripted with WireCase/StreamCase, driving the openai plugin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from patcode_core.errors import ErrorKind, PatCodeError, ProviderError
from patcode_core.testing import FaultServer, StreamCase, WireCase, sse_event
from patcode_core.testing.fault_server import fault_server
from patcode_core.types import CompletionResult

KEY = "sk-proj-faultserver0123456789abcdefZq8x"
TEXT = "The image shows a wooden boardwalk."

SUCCESS = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT, "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 8, "total_tokens": 27},
    "system_fingerprint": "fp_fc9f1d7035",
}


def chunk(content: str | None = None, finish: str | None = None, **delta: object) -> dict[str, Any]:
    body = dict(delta)
    if content is not None:
        body["content"] = content
    return {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": body, "logprobs": None, "finish_reason": finish}]}


USAGE_CHUNK = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4o-mini",
               "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}
STREAM = StreamCase(
    events=[chunk("", role="assistant"), chunk("Hello"), chunk("!"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]"],
    cut_after=2, text="Hello!", path="/chat/completions",
)

patcode_fault_server = pytest.fixture(fault_server, name="patcode_fault_server")


@pytest.fixture
def openai(patcode_manager_for: Callable[..., Any], patcode_fault_server: FaultServer) -> Callable[..., Any]:
    """``openai(**env)``: a manager over the openai plugin alone, pointed at the fault server."""

    def make(**env: str) -> Any:
        variables = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": patcode_fault_server.url("/v1"), "LLM_STATS_STORE": "off",
                     "LLM_HEDGE": "off", "LLM_MAX_RETRIES": "0", "LLM_RETRY_BASE_DELAY": "0", "LLM_FALLBACK_ORDER": "openai"}
        variables.update(env)
        return patcode_manager_for("openai", **variables)

    return make


async def _error_of(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


async def _stream(manager: Any) -> tuple[list[Any], PatCodeError | None]:
    seen: list[Any] = []
    try:
        async for event in manager.stream("Hola", fallback=False):
            seen.append(event)
    except PatCodeError as exc:
        return seen, exc
    return seen, None


# -- through the openai plugin --------------------------------------------


async def test_success_and_the_request_as_sent(openai: Any, patcode_fault_server: FaultServer) -> None:
    patcode_fault_server.reply(WireCase(json=SUCCESS, path="/chat/completions"))
    async with openai() as manager:
        result = await manager.complete("Hola", fallback=False)
    assert result.text == TEXT and result.provider == "openai"
    [request] = patcode_fault_server.requests
    assert (request.method, request.path, request.answer) == ("POST", "/v1/chat/completions", "reply 200")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json["messages"][-1] == {"role": "user", "content": "Hola"}
    assert "stream" not in request.json or request.json["stream"] is False
    assert not request.client_closed
    assert patcode_fault_server.pending == 0


async def test_429_with_retry_after_is_a_rate_limit(openai: Any, patcode_fault_server: FaultServer) -> None:
    patcode_fault_server.reply(WireCase(429, json={"error": {"message": "Rate limit reached", "type": "requests",
                                                             "param": None, "code": "rate_limit_exceeded"}},
                                        headers={"Retry-After": "7"}))
    async with openai() as manager:
        error = await _error_of(manager.complete("Hola", fallback=False))
    assert error.kind is ErrorKind.RATE_LIMIT
    assert error.retry_after == 7.0


async def test_reset_is_a_connection_error(openai: Any, patcode_fault_server: FaultServer) -> None:
    patcode_fault_server.reset()
    async with openai() as manager:
        error = await _error_of(manager.complete("Hola", fallback=False))
    assert error.kind is ErrorKind.CONNECTION
    assert patcode_fault_server.requests[0].answer == "reset"


async def test_hang_with_a_short_timeout_is_a_timeout(openai: Any, patcode_fault_server: FaultServer) -> None:
    patcode_fault_server.hang()
    started = time.monotonic()
    async with openai(OPENAI_TIMEOUT="0.5") as manager:
        error = await _error_of(manager.complete("Hola", fallback=False))
    assert error.kind is ErrorKind.TIMEOUT
    assert time.monotonic() - started < 5
    assert patcode_fault_server.requests[0].wait_closed(3), "the client never hung up on the hanging request"


async def test_stream(openai: Any, patcode_fault_server: FaultServer) -> None:
    patcode_fault_server.stream(STREAM, token_delay=0.01)
    async with openai() as manager:
        events, error = await _stream(manager)
    assert error is None
    assert isinstance(events[-1], CompletionResult) and events[-1].text == "Hello!"
    [request] = patcode_fault_server.requests
    assert request.json["stream"] is True and request.json["stream_options"] == {"include_usage": True}
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("cut", ["close", "reset", "end"])
async def test_cut_stream_is_never_an_answer(openai: Any, patcode_fault_server: FaultServer, cut: str) -> None:
    patcode_fault_server.stream(STREAM, cut_after=STREAM.cut_after, cut=cut)  # type: ignore[arg-type]
    async with openai(LLM_STREAM_RECOVERY="error") as manager:
        events, error = await _stream(manager)
    assert not [event for event in events if isinstance(event, CompletionResult)]
    assert error is not None
    assert patcode_fault_server.requests[0].answer == f"stream cut_after=2 ({cut})"


# -- the server itself, with a plain httpx client ------------------------------


def test_undescribed_request_is_a_404_and_query_is_recorded() -> None:
    with FaultServer() as server:
        answer = httpx.get(server.url("/v1beta/models/x:streamGenerateContent?alt=sse&key=abc"), headers={"x-goog-api-key": "k"})
        assert answer.status_code == 404
        [request] = server.requests
    assert request.path == "/v1beta/models/x:streamGenerateContent"
    assert request.query == {"alt": "sse", "key": "abc"}
    assert request.headers["x-goog-api-key"] == "k" and request.answer == "undescribed"


def test_matching_by_method_and_path_times_and_raw_body() -> None:
    with FaultServer() as server:
        server.reply(WireCase(503, body="<html>down</html>", headers={"content-type": "text/html"}, path="/complete"), times=2)
        server.reply(WireCase(json={"ok": True}, method="GET"), times=None)
        with httpx.Client(base_url=server.base_url) as client:
            assert client.get("/anything").json() == {"ok": True}
            for _ in range(2):
                answer = client.post("/v2/complete", json={"a": 1})
                assert (answer.status_code, answer.text, answer.headers["content-type"]) == (503, "<html>down</html>", "text/html")
            assert client.post("/v2/complete").status_code == 404
            assert client.get("/again").json() == {"ok": True}
        assert server.pending == 1
        assert server.requests[1].json == {"a": 1}


def test_ndjson_stream_with_named_sse_events_and_delays() -> None:
    ndjson = StreamCase(events=[{"message": "a"}, {"message": "b"}, {"done": True}], cut_after=1, format="ndjson")
    named = StreamCase(events=[sse_event("content", {"t": "x"}), sse_event("message_stop", {})], cut_after=1)
    with FaultServer() as server:
        server.stream(ndjson, delay=0.2, first_token_delay=0.2)
        server.stream(named, trickle=0.001)
        started = time.monotonic()
        with httpx.Client(base_url=server.base_url) as client:
            with client.stream("POST", "/api/chat") as answer:
                headers_at = time.monotonic() - started
                assert answer.headers["content-type"] == "application/x-ndjson"
                assert answer.headers["transfer-encoding"] == "chunked"
                lines = list(answer.iter_lines())
            body_at = time.monotonic() - started
            assert lines == ['{"message": "a"}', '{"message": "b"}', '{"done": true}']
            assert 0.2 <= headers_at < body_at and body_at >= 0.4
            text = client.post("/messages").text
    assert text == 'event: content\ndata: {"t": "x"}\n\nevent: message_stop\ndata: {}\n\n'


def test_stall_keeps_the_connection_open_until_the_client_leaves() -> None:
    with FaultServer() as server:
        server.stream(STREAM, stall_after=1)
        with httpx.Client(base_url=server.base_url, timeout=httpx.Timeout(5, read=0.3)) as client:
            with client.stream("POST", "/v1/chat/completions") as answer:
                received = []
                with pytest.raises(httpx.ReadTimeout):
                    for piece in answer.iter_bytes():
                        received.append(piece)
        assert b"".join(received) == STREAM.frames()[0]
        assert server.requests[0].wait_closed(3)


def test_trickled_reply_and_clean_stop_with_a_hang_open() -> None:
    server = FaultServer().start()
    try:
        server.reply(WireCase(json={"x": 1}), trickle=0.02)
        started = time.monotonic()
        assert httpx.get(server.url("/slow")).json() == {"x": 1}
        assert time.monotonic() - started >= 0.02 * len(b'{"x": 1}') * 0.8
        server.hang()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(server.url("/hang"), timeout=0.2)
        server.hang()
        with httpx.Client(timeout=10) as client:
            failures: list[BaseException] = []

            def ask() -> None:
                try:
                    client.get(server.url("/hang-forever"))
                except BaseException as exc:  # noqa: BLE001
                    failures.append(exc)

            waiting = threading.Thread(target=ask)
            waiting.start()
            deadline = time.monotonic() + 3
            while len(server.requests) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop()  # drops the hanging connection: the client sees it end
            waiting.join(5)
            assert failures and isinstance(failures[0], httpx.HTTPError)
    finally:
        server.stop()


def test_scripting_mistakes_are_refused() -> None:
    server = FaultServer()
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018
    with pytest.raises(ValueError):
        server.stream(STREAM, stall_after=1, cut_after=1)
    with pytest.raises(ValueError):
        server.stream(STREAM, cut_after=99)
    with pytest.raises(ValueError):
        server.reply(WireCase(), times=0)
