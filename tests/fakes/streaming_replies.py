"""Streamed answers for the fake provider server: SSE like the chat-completions API, NDJSON like Ollama, faults included.

``stream_fault`` modes (``{"type": "stream", "mode": ..., "after": n}``):
``ok``; ``cut`` (connection dropped after ``after`` tokens, no end);
``stall`` (``after`` tokens, then silence with the connection open);
``silence`` (headers, then nothing); ``malformed_chunk`` (one unreadable
chunk after ``after`` tokens, the rest healthy); ``malformed_chunks`` (only
unreadable chunks after ``after`` tokens); ``no_done`` (the body ends
cleanly after ``after`` tokens: no finish reason, no end marker);
``no_done_finished`` (a finish reason, then the body ends without
``[DONE]``); ``error`` (an in-band error after ``after`` tokens).
``token_delay`` spaces the tokens; ``first_token_delay`` is the silence
between the headers (sent at once) and the first token, as a server that
takes long to read the prompt; ``"usage": false`` leaves the token
counts out of a chat-completions stream, as llama.cpp's server does (it
ignores ``stream_options.include_usage``).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

CREATED = 1741570283


def tokens_of(text: str) -> list[str]:
    """``"api says: hola"`` → ``["api", " says:", " hola"]``."""
    return re.findall(r"\s*\S+", text) or [text]


def chunk_frame(data: bytes) -> bytes:
    """One piece of a chunked HTTP/1.1 body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def head(content_type: str) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()


def api_events(model: str, text: str, groq_style: bool, with_usage: bool = True) -> tuple[list[str], str, list[str]]:
    """(content events, finish event, closing events) as the chat-completions stream sends them."""
    base = {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_06737a9306"}
    role = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]}
    content = [
        json.dumps({**base, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]})
        for piece in tokens_of(text)
    ]
    usage = {"prompt_tokens": 19, "completion_tokens": len(content), "total_tokens": 19 + len(content)}
    finish: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    if not with_usage:
        return [json.dumps(role), *content], json.dumps(finish), ["[DONE]"]
    if groq_style:
        finish["x_groq"] = {"id": "req_01jbd6g2qdfw2adyrt2az8hz4w", "usage": {"queue_time": 0.02, "prompt_time": 0.004,
                            "completion_time": 0.01, "total_time": 0.014, **usage}}
    closing = [json.dumps({**base, "choices": [], "usage": usage}), "[DONE]"]
    return [json.dumps(role), *content], json.dumps(finish), closing


def ollama_lines(model: str, text: str) -> tuple[list[str], str]:
    """(content lines, final ``done`` line) as Ollama's /api/chat streams them."""
    lines = [
        json.dumps({"model": model, "created_at": "2023-08-04T08:52:19.385406455-07:00",
                    "message": {"role": "assistant", "content": piece}, "done": False})
        for piece in tokens_of(text)
    ]
    final = json.dumps({"model": model, "created_at": "2023-08-04T19:22:45.499127Z", "message": {"role": "assistant", "content": ""},
                        "done": True, "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
                        "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": len(lines),
                        "eval_duration": 4535599000})
    return lines, final


async def send_stream(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, path: str, model: str, text: str,
                      fault: dict[str, Any]) -> bool:
    """Write one streamed answer with ``fault``; False when the connection must not be reused."""
    mode = fault.get("mode", "ok")
    after = int(fault.get("after", 2))
    delay = float(fault.get("token_delay", 0.0))
    ollama = path == "/api/chat"
    if ollama:
        pieces, final = ollama_lines(model, text)
        frame = lambda item: (item + "\n").encode()  # noqa: E731
        writer.write(head("application/x-ndjson"))
        finish_pieces: list[str] = []
        closing = [final]
        bad, error = "{\"message\": {\"content\": ", json.dumps({"error": "an error was encountered while running the model: unexpected EOF"})
    else:
        pieces, finish, closing = api_events(model, text, groq_style="/openai/v1/" in path,
                                             with_usage=fault.get("usage", True) is not False)
        frame = lambda item: f"data: {item}\n\n".encode()  # noqa: E731
        writer.write(head("text/event-stream"))
        finish_pieces = [finish]
        bad = "{\"choices\": [{\"delta\": "
        error = json.dumps({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}})
    await writer.drain()
    if mode == "silence":
        await reader.read()
        return False
    first_token_delay = float(fault.get("first_token_delay", 0.0))
    if first_token_delay:
        await asyncio.sleep(first_token_delay)
    limit = len(pieces) if mode in ("ok", "no_done_finished", "malformed_chunk") else min(after, len(pieces))
    for index, piece in enumerate(pieces[:limit]):
        if mode == "malformed_chunk" and index == after:
            writer.write(chunk_frame(frame(bad)))
        writer.write(chunk_frame(frame(piece)))
        await writer.drain()
        if delay:
            await asyncio.sleep(delay)
    if mode == "cut":
        writer.transport.abort()
        return False
    if mode == "stall":
        await reader.read()
        return False
    if mode == "malformed_chunks":
        for _ in range(10):
            writer.write(chunk_frame(frame(bad)))
    elif mode == "error":
        writer.write(chunk_frame(frame(error)))
    elif mode == "no_done_finished":
        for piece in finish_pieces:
            writer.write(chunk_frame(frame(piece)))
    elif mode in ("ok", "malformed_chunk"):
        for piece in [*finish_pieces, *closing]:
            writer.write(chunk_frame(frame(piece)))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True
