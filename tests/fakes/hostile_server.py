"""A loopback HTTP/1.1 server that answers like a hostile or broken LLM provider.

Run it as a process: ``python hostile_server.py --port 0`` prints
``LISTENING <port>`` once it accepts connections; :class:`HostileServer`
starts and stops it for tests. Standard library only.

The behaviour is the first path segment, so a test only sets a base URL:
``/<behaviour>/v1/chat/completions``, ``/<behaviour>/v1/models`` (the OpenAI
chat-completions API: JSON, or SSE ``data: {...}`` events ending in
``data: [DONE]`` when the body has ``"stream": true``) and
``/<behaviour>/api/chat``, ``/<behaviour>/api/tags`` (Ollama: NDJSON when
streaming). Behaviours:

- ``ok``: a healthy answer ``HOSTILE-SERVER-OK`` (a control).
- ``escapes``: a normal answer ``HOSTILE-OK`` followed by terminal escapes
  (OSC 52 clipboard, OSC 0 title, clear screen, OSC 8 link, C1 CSI, a bidi
  override, a zero-width space); the ``model`` field carries an OSC too.
  Streams split the escapes across chunks. The model list has an escape.
- ``escape_error``: HTTP 400 whose error message carries escapes and a bidi
  override.
- ``surrogate``: an answer whose raw JSON has a lone surrogate ``\\ud800``
  (``"before \\ud800 after"``), streams too.
- ``gzip_bomb``: ``Content-Encoding: gzip``, ~0.5 MB on the wire that inflates
  to ~512 MB behind a JSON (or SSE, NDJSON) prefix; built once per prefix.
- ``endless``: a chunked 200 that never ends, written as fast as the client
  reads (one JSON string that never closes; endless SSE / NDJSON content).
- ``key_echo``: streams open with an unreadable event quoting the request's
  bearer token, then a normal answer; plain calls get HTTP 400
  ``Invalid key <token>``.
- ``redirect`` (``redirect301``, ``redirect302``, ``redirect307``,
  ``redirect308``): every path answers with a redirect to
  ``http://evil.example/v1/chat/completions``.
- ``error_in_200``: HTTP 200 whose body is an ``insufficient_quota`` error.
- ``odd_headers``: a normal answer ``ODD-HEADERS-OK`` with rate-limit headers
  that are ``inf``, 400 digits, ``1e400s``, and ``retry-after: nan``.
- ``nested``: HTTP 200 JSON ``{"choices": [[[...]]]}`` nested 100,000 deep.
- ``done_no_finish``: streams ``CUT-PART-1 `` and ``CUT-PART-2`` with no
  finish reason, then ``[DONE]`` (llama.cpp's server when a generation is
  interrupted; Ollama: no ``done: true`` line). Plain calls answer normally.

Control endpoints: ``GET /_requests`` (what each behaviour saw: behaviour,
method, path, headers, body) and ``POST /_reset`` (forget them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from http_requests import read_request  # noqa: E402

EVIL_LOCATION = "http://evil.example/v1/chat/completions"
ESCAPES = (
    "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write the clipboard
    "\x1b]0;pwned\x07"  # OSC 0: window title
    "\x1b[2J"  # clear the screen
    "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x9b31m"  # C1 CSI: red
    "\u202e"  # right-to-left override
    "\u200b"  # zero-width space
)
ESCAPES_TEXT = "HOSTILE-OK " + ESCAPES + " END"
# The same text cut inside the escapes, so a client must not check chunk by chunk.
ESCAPES_PIECES = ["HOSTILE-OK ", "\x1b]52;c;ZXZ", "pbA==\x07\x1b", "]0;pwned\x07\x1b[", "2J\x1b]8;;http://evil.example/\x1b",
                  "\\click\x1b]8;;\x1b\\\x9b", "31m\u202e", "\u200b END"]
ESCAPES_MODEL_SUFFIX = "\x1b]0;model\x07"
SURROGATE_MARK = "@@LONE-SURROGATE@@"
# Where a JSON string opens and never closes: the bomb and the endless body follow these.
API_CHAT_PREFIX = '{"choices":[{"message":{"content":"'
API_CHUNK_PREFIX = 'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"'
OLLAMA_CHAT_PREFIX = '{"model":"m","message":{"role":"assistant","content":"'
MODELS_PREFIX = '{"object":"list","data":[{"id":"'
TAGS_PREFIX = '{"models":[{"name":"'
QUOTA_ERROR = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
BOMB_BLOCK = b"a" * (1 << 20)
BOMB_BLOCKS = 512
ENDLESS_PIECE = 64 * 1024
CREATED = 1741570283


@dataclass
class Request:
    """One request as read off the wire; ``kind`` is ``chat``, ``models``, ``tags`` or ``unknown``."""

    behaviour: str
    method: str
    path: str  # below the behaviour: /v1/chat/completions, /api/chat, ...
    headers: dict[str, str]
    body: Any
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def kind(self) -> str:
        if self.path.endswith("/chat/completions") or self.path == "/api/chat":
            return "chat"
        if self.path == "/api/tags":
            return "tags"
        if self.path.endswith("/models"):
            return "models"
        return "unknown"

    @property
    def ollama(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def stream(self) -> bool:
        return self.kind == "chat" and isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def model(self) -> str:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else "gpt-4o-mini"

    @property
    def token(self) -> str:
        """The bearer token the client sent, verbatim."""
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else value


# ---------------------------------------------------------------- wire shapes


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'X'}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(request: Request, status: int, body: bytes | str | dict[str, Any], content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    request.writer.write(head(status, {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})}) + data)
    await request.writer.drain()


def chunk_frame(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def send_chunked(request: Request, pieces: list[str], content_type: str, headers: dict[str, str] | None = None) -> None:
    """A 200 with a chunked body, one HTTP chunk per piece, then the end of the body."""
    request.writer.write(head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked", **(headers or {})}))
    for piece in pieces:
        request.writer.write(chunk_frame(piece.encode()))
        await request.writer.drain()
    request.writer.write(b"0\r\n\r\n")
    await request.writer.drain()


def api_reply(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
        "system_fingerprint": "fp_06737a9306",
    }


def ollama_reply(model: str, content: str) -> dict[str, Any]:
    return {"model": model, "created_at": "2023-12-12T14:13:43.416799Z", "message": {"role": "assistant", "content": content},
            "done_reason": "stop", "done": True, "total_duration": 5191566416, "load_duration": 2154458,
            "prompt_eval_count": 26, "prompt_eval_duration": 383809000, "eval_count": 298, "eval_duration": 4799921000}


def api_chunk(model: str, content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_06737a9306",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def ollama_line(model: str, content: str, done: bool = False) -> dict[str, Any]:
    line: dict[str, Any] = {"model": model, "created_at": "2023-08-04T08:52:19.385406455-07:00",
                            "message": {"role": "assistant", "content": content}, "done": done}
    if done:
        line.update(done_reason="stop", total_duration=4883583458, prompt_eval_count=26, eval_count=2)
    return line


def stream_pieces(request: Request, contents: list[str], model: str | None = None, finish: bool = True) -> list[str]:
    """The body pieces of a streamed answer (SSE events, or NDJSON lines for Ollama), already framed."""
    model = model if model is not None else request.model
    if request.ollama:
        lines = [ollama_line(model, piece) for piece in contents] + ([ollama_line(model, "", done=True)] if finish else [])
        return [json.dumps(line) + "\n" for line in lines]
    events = [api_chunk(model, "")] + [api_chunk(model, piece) for piece in contents]
    if finish:
        events.append(api_chunk(model, None, "stop"))
    return [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]


def stream_type(request: Request) -> str:
    return "application/x-ndjson" if request.ollama else "text/event-stream"


def model_list(request: Request, models: list[str]) -> dict[str, Any]:
    if request.ollama:
        return {"models": [{"name": m, "model": m, "modified_at": "2023-11-04T14:56:49.277302595-07:00", "size": 7365960935,
                            "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
                            "details": {"format": "gguf", "family": "llama", "parameter_size": "1.5B"}} for m in models]}
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 1686935002, "owned_by": "system"} for m in models]}


async def send_normal(request: Request, content: str, headers: dict[str, str] | None = None, model: str | None = None) -> None:
    """The healthy answer to any path, with ``content`` as the assistant's text."""
    if request.kind in ("models", "tags"):
        await send(request, 200, model_list(request, [request.model, "qwen2.5-coder:1.5b"]), headers=headers)
    elif request.stream:
        await send_chunked(request, stream_pieces(request, [content], model), stream_type(request), headers)
    elif request.kind == "chat":
        reply = ollama_reply if request.ollama else api_reply
        await send(request, 200, reply(model if model is not None else request.model, content), headers=headers)
    else:
        await send(request, 404, {"error": "404 page not found"})


# ----------------------------------------------------------------- behaviours


async def ok(request: Request) -> None:
    await send_normal(request, "HOSTILE-SERVER-OK")


async def escapes(request: Request) -> None:
    model = request.model + ESCAPES_MODEL_SUFFIX
    if request.kind in ("models", "tags"):
        evil = "evil" + ESCAPES_MODEL_SUFFIX + "\u202e"
        await send(request, 200, model_list(request, ["gpt-4o-mini", "qwen2.5-coder:1.5b", evil]))
    elif request.stream:
        await send_chunked(request, stream_pieces(request, ESCAPES_PIECES, model), stream_type(request))
    else:
        await send_normal(request, ESCAPES_TEXT, model=model)


async def escape_error(request: Request) -> None:
    message = "bad \x1b]0;title\x07 \x1b[2J thing \u202e"
    if request.ollama:
        await send(request, 400, {"error": message})
    else:
        await send(request, 400, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})


async def surrogate(request: Request) -> None:
    """JSON text with ``\\ud800`` written by hand: ``json.dumps`` cannot produce a lone surrogate."""
    def lone(text: str) -> str:
        return text.replace(SURROGATE_MARK, "\\ud800")

    if request.stream:
        pieces = stream_pieces(request, ["before ", SURROGATE_MARK, " after"])
        await send_chunked(request, [lone(piece) for piece in pieces], stream_type(request))
    elif request.kind == "chat":
        reply = ollama_reply if request.ollama else api_reply
        await send(request, 200, lone(json.dumps(reply(request.model, f"before {SURROGATE_MARK} after"))))
    else:
        await send_normal(request, "")


_bombs: dict[bytes, bytes] = {}


def gzip_bomb_body(prefix: bytes) -> bytes:
    """A gzip member: ``prefix`` then 512 MB of ``a``, about 0.5 MB compressed; built once per prefix.

    Each 1 MB block is deflated after a full flush, so its compressed form does
    not depend on what came before and is computed once.
    """
    if prefix not in _bombs:
        def deflate(data: bytes, mode: int) -> bytes:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            return compressor.compress(data) + compressor.flush(mode)

        block = deflate(BOMB_BLOCK, zlib.Z_FULL_FLUSH)
        crc = zlib.crc32(prefix)
        for _ in range(BOMB_BLOCKS):
            crc = zlib.crc32(BOMB_BLOCK, crc)
        size = (len(prefix) + BOMB_BLOCKS * len(BOMB_BLOCK)) & 0xFFFFFFFF
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        _bombs[prefix] = (header + deflate(prefix, zlib.Z_FULL_FLUSH) + block * BOMB_BLOCKS
                          + deflate(b"", zlib.Z_FINISH) + struct.pack("<II", crc, size))
    return _bombs[prefix]


async def gzip_bomb(request: Request) -> None:
    if request.kind == "models":
        prefix, content_type = MODELS_PREFIX, "application/json"
    elif request.kind == "tags":
        prefix, content_type = TAGS_PREFIX, "application/json"
    elif request.stream:
        prefix, content_type = OLLAMA_CHAT_PREFIX if request.ollama else API_CHUNK_PREFIX, stream_type(request)
    else:
        prefix, content_type = OLLAMA_CHAT_PREFIX if request.ollama else API_CHAT_PREFIX, "application/json"
    await send(request, 200, gzip_bomb_body(prefix.encode()), content_type, {"Content-Encoding": "gzip"})


async def endless(request: Request) -> None:
    """A chunked 200 that never ends; ``drain`` paces it to the client's reading. Ends when the client leaves."""
    if request.stream and request.ollama:
        content_type, first = stream_type(request), ""
        unit = "".join(json.dumps(ollama_line(request.model, "endless ")) + "\n" for _ in range(200))
    elif request.stream:
        content_type, first = stream_type(request), f"data: {json.dumps(api_chunk(request.model, ''))}\n\n"
        unit = "".join(f"data: {json.dumps(api_chunk(request.model, 'endless '))}\n\n" for _ in range(200))
    else:
        content_type, unit = "application/json", "x" * ENDLESS_PIECE
        chat_prefix = OLLAMA_CHAT_PREFIX if request.ollama else API_CHAT_PREFIX
        first = {"models": MODELS_PREFIX, "tags": TAGS_PREFIX}.get(request.kind, chat_prefix)
    request.writer.write(head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked"}))
    if first:
        request.writer.write(chunk_frame(first.encode()))
    frame = chunk_frame(unit.encode())
    while not request.writer.transport.is_closing():
        request.writer.write(frame)
        await request.writer.drain()


async def key_echo(request: Request) -> None:
    token = request.token
    if request.stream:
        unreadable = f'{{"error": not json, you sent Authorization: Bearer {token}'
        first = unreadable + "\n" if request.ollama else f"data: {unreadable}\n\n"
        await send_chunked(request, [first, *stream_pieces(request, ["KEY-ECHO-OK"])], stream_type(request))
    elif request.ollama:
        await send(request, 400, {"error": f"Invalid key {token}"})
    else:
        await send(request, 400, {"error": {"message": f"Invalid key {token}", "type": "invalid_request_error", "param": None,
                                            "code": None}})


async def redirect(request: Request) -> None:
    status = int(request.behaviour.removeprefix("redirect") or 302)
    await send(request, status, "", "text/html", {"Location": EVIL_LOCATION})


async def error_in_200(request: Request) -> None:
    await send(request, 200, QUOTA_ERROR)


async def odd_headers(request: Request) -> None:
    headers = {
        "x-ratelimit-remaining-tokens": "inf",
        "x-ratelimit-remaining-requests": "9" * 400,
        "x-ratelimit-reset-tokens": "inf",
        "x-ratelimit-reset-requests": "1e400s",
        "retry-after": "nan",
    }
    await send_normal(request, "ODD-HEADERS-OK", headers)


async def nested(request: Request) -> None:
    await send(request, 200, '{"choices": ' + "[" * 100_000 + "]" * 100_000 + "}")


async def done_no_finish(request: Request) -> None:
    if request.stream:
        await send_chunked(request, stream_pieces(request, ["CUT-PART-1 ", "CUT-PART-2"], finish=False), stream_type(request))
    else:
        await send_normal(request, "DONE-NO-FINISH-PLAIN-OK")


BEHAVIOURS: dict[str, Callable[[Request], Awaitable[None]]] = {
    "ok": ok,
    "escapes": escapes,
    "escape_error": escape_error,
    "surrogate": surrogate,
    "gzip_bomb": gzip_bomb,
    "endless": endless,
    "key_echo": key_echo,
    "redirect": redirect,
    "redirect301": redirect,
    "redirect302": redirect,
    "redirect307": redirect,
    "redirect308": redirect,
    "error_in_200": error_in_200,
    "odd_headers": odd_headers,
    "nested": nested,
    "done_no_finish": done_no_finish,
}

# ------------------------------------------------------------------- server

SEEN: list[dict[str, Any]] = []


def decode_body(raw: bytes) -> Any:
    text = raw.decode("utf-8", "backslashreplace")
    try:
        return json.loads(text) if text else None
    except (json.JSONDecodeError, RecursionError):
        return text


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (incoming := await read_request(reader)) is not None:
            method, target, headers, raw = incoming
            if target == "/_requests":
                data = json.dumps({"requests": SEEN}).encode()
                writer.write(head(200, {"Content-Type": "application/json", "Content-Length": str(len(data))}) + data)
                await writer.drain()
                continue
            if target == "/_reset":
                SEEN.clear()
                writer.write(head(200, {"Content-Length": "0"}))
                await writer.drain()
                continue
            behaviour, _, rest = target.lstrip("/").partition("/")
            request = Request(behaviour, method, "/" + rest, headers, decode_body(raw), reader, writer)
            SEEN.append({"behaviour": behaviour, "method": method, "path": request.path, "kind": request.kind,
                         "headers": headers, "body": request.body, "at": time.time()})
            action = BEHAVIOURS.get(behaviour)
            if action is None:
                await send(request, 404, {"error": f"no behaviour {behaviour!r}"})
            else:
                await action(request)
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        if not writer.transport.is_closing():
            writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=512)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------- test helper


class HostileServer:
    """A running hostile_server.py process; ``base("escapes")`` is the address a provider's base URL starts with."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(Path(__file__)), "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"hostile server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def base(self, behaviour: str) -> str:
        """``http://127.0.0.1:PORT/<behaviour>``: add ``/v1`` for the chat-completions API, nothing for Ollama."""
        return f"{self.url}/{behaviour}"

    def requests(self, behaviour: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """What the server saw since the last :meth:`reset`, optionally one behaviour's or one kind's (``chat``, ``models``)."""
        with urllib.request.urlopen(f"{self.url}/_requests", timeout=5) as response:
            seen = json.load(response)["requests"]
        return [r for r in seen if behaviour in (None, r["behaviour"]) and kind in (None, r["kind"])]

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_reset", method="POST"), timeout=5).close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


if __name__ == "__main__":
    main()
