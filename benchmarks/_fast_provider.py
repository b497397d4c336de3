"""A minimal, fast loopback provider for load benchmarks: one fixed chat.completion answer.

``tests/fakes/provider_server.py`` scripts faults and logs every request,
which costs more per request than the gateway being measured. This one only
parses HTTP/1.1 framing (keep-alive, ``Content-Length`` or chunked bodies)
on an ``asyncio.Protocol`` (uvloop when installed) and answers:

- ``POST */chat/completions``: a fixed ``chat.completion`` with usage;
- ``GET */models``: a one-model list;
- anything else: 404.

Run as a process: ``python _fast_provider.py --port 0`` prints
``LISTENING <port>`` (flushed) once it accepts connections; SIGTERM stops it.
It reads no request body as JSON: the answer is the same whatever is asked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "¡Hola! ¿En qué te ayudo?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17},
    },
    separators=(",", ":"),
).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "bench"}]}).encode()
NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}'
MAX_HEAD = 64 * 1024


def _response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


CHAT_OK = _response("200 OK", COMPLETION)
MODELS_OK = _response("200 OK", MODELS)
MISSING = _response("404 Not Found", NOT_FOUND)


def _answer(request_line: bytes) -> bytes:
    parts = request_line.split(b" ", 2)
    if len(parts) < 2:
        return MISSING
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method == b"POST" and target.endswith(b"/chat/completions"):
        return CHAT_OK
    if method == b"GET" and target.endswith(b"/models"):
        return MODELS_OK
    return MISSING


def _chunked_end(buffer: bytes, start: int) -> int:
    """Where a chunked body that starts at ``start`` ends, or -1 while incomplete."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return -1
        size = int(buffer[position:line_end].split(b";", 1)[0] or b"0", 16)
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if buffer[line_end : line_end + 4] == b"\r\n\r\n":
                return line_end + 4
            return -1 if trailer_end < 0 else trailer_end + 4
        position = line_end + 2 + size + 2
        if position > len(buffer):
            return -1


class Connection(asyncio.Protocol):
    """One keep-alive connection: answers each complete request as soon as its body is in."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        close = False
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buffer) > MAX_HEAD:
                    close = True
                break
            head = buffer[:head_end]
            lowered = head.lower()
            body_start = head_end + 4
            if b"\r\ntransfer-encoding: chunked" in lowered:
                end = _chunked_end(buffer, body_start)
                if end < 0:
                    break
            else:
                length = 0
                at = lowered.find(b"\r\ncontent-length:")
                if at >= 0:
                    value_end = lowered.find(b"\r\n", at + 2)
                    length = int(lowered[at + 17 : value_end if value_end >= 0 else None].strip())
                end = body_start + length
                if len(buffer) < end:
                    break
            out.append(_answer(head[: head.find(b"\r\n")] if b"\r\n" in head else head))
            if b"\r\nconnection: close" in lowered:
                close = True
                buffer = b""
                break
            buffer = buffer[end:]
        self.buffer = buffer
        if self.transport is None:
            return
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            self.transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    server = await loop.create_server(Connection, sock=sock, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
