"""A loopback HTTP server that answers like Ollama and like the OpenAI-style API, faults included.

Run it as a process: ``python provider_server.py --port 0`` prints
``LISTENING <port>`` once it accepts connections. Tests script it over HTTP:

- ``POST /_control/faults`` ``{"route": "chat", "faults": [...]}`` queues
  faults; each matching request takes the next one (``"times": n`` repeats it,
  ``"always": true`` keeps it; ``"until": t``, a Unix time, drops it from
  that moment on, so ``always`` plus ``until`` is an outage that heals by
  itself on the server's clock). Routes: ``chat`` (``/api/chat`` and
  ``*/chat/completions``), ``tags`` (``/api/tags``), ``models`` (``*/models``).
- Fault types: ``http`` (``status``, ``body`` JSON or text, ``headers``,
  ``content_type``, ``seconds`` to wait before answering), ``hang``
  (accept, never answer), ``reset`` (close the connection with RST, no
  response), ``delay`` (``seconds``, then answer),
  ``malformed`` (200 with broken JSON), ``no_choices`` (200, ``choices: []``,
  or an Ollama body with no ``message``), ``empty`` (200 with an empty
  answer), ``ok`` (the normal answer, with extra ``headers``), ``trickle``
  (200 headers, then the body one byte every ``seconds``), ``stream`` (a
  request with ``"stream": true`` answered with a fault of
  ``streaming_replies.py``; without a fault such a request streams normally).
- ``POST /_control/config`` ``{"models": [...], "reply": "..."}``,
  ``GET /_control/requests`` (what was asked), ``POST /_control/reset``,
  ``POST /_control/clear_faults`` (heal, keeping the request log).

It speaks HTTP/1.1 with keep-alive and uses only the standard library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from http_requests import read_request  # noqa: E402
from streaming_replies import send_stream  # noqa: E402

OLLAMA_MODELS = ["qwen2.5-coder:1.5b", "llama3.2:latest"]
API_MODELS = ["gpt-4o-mini", "openai/gpt-oss-120b"]


class State:
    """What the server was told to do and what it saw."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.faults: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.ollama_models = list(OLLAMA_MODELS)
        self.api_models = list(API_MODELS)
        self.reply: str | None = None

    def next_fault(self, route: str) -> dict[str, Any] | None:
        now = time.time()
        for key in (route, "any"):
            queue = self.faults.get(key)
            while queue and "until" in queue[0] and now >= float(queue[0]["until"]):
                queue.pop(0)  # its time is over
            if not queue:
                continue
            fault = queue[0]
            if fault.get("always"):
                return fault
            times = int(fault.get("times", 1)) - 1
            if times <= 0:
                queue.pop(0)
            else:
                fault["times"] = times
            return fault
        return None


STATE = State()


def route_of(method: str, path: str) -> str:
    if path.startswith("/_control/"):
        return "control"
    if path == "/api/tags":
        return "tags"
    if path == "/api/chat" or path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/models"):
        return "models"
    return "unknown"


def ollama_chat(body: dict[str, Any]) -> tuple[int, Any]:
    model = body.get("model")
    if model not in STATE.ollama_models and f"{model}:latest" not in STATE.ollama_models:
        return 404, {"error": f"model '{model}' not found"}
    last = (body.get("messages") or [{}])[-1].get("content", "")
    content = STATE.reply if STATE.reply is not None else f"ollama says: {last}"
    return 200, {
        "model": model,
        "created_at": "2023-12-12T14:13:43.416799Z",
        "message": {"role": "assistant", "content": content},
        "done_reason": "stop",
        "done": True,
        "total_duration": 5191566416,
        "load_duration": 2154458,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 383809000,
        "eval_count": 298,
        "eval_duration": 4799921000,
    }


def api_chat(body: dict[str, Any]) -> tuple[int, Any]:
    model = body.get("model")
    if model not in STATE.api_models:
        return 404, {
            "error": {
                "message": f"The model `{model}` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        }
    last = (body.get("messages") or [{}])[-1].get("content", "")
    content = STATE.reply if STATE.reply is not None else f"api says: {last}"
    return 200, {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
        "system_fingerprint": "fp_06737a9306",
    }


def answer(method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    if path == "/api/tags":
        return 200, {
            "models": [
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2023-11-04T14:56:49.277302595-07:00",
                    "size": 7365960935,
                    "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
                    "details": {"format": "gguf", "family": "llama", "parameter_size": "1.5B"},
                }
                for name in STATE.ollama_models
            ]
        }
    if path == "/api/chat" and method == "POST":
        return ollama_chat(body)
    if path.endswith("/chat/completions") and method == "POST":
        return api_chat(body)
    if path.endswith("/models") and method == "GET":
        return 200, {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 1686935002, "owned_by": "system"} for m in STATE.api_models],
        }
    return 404, {"error": "404 page not found"}


def control(method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    if path == "/_control/reset":
        STATE.reset()
    elif path == "/_control/clear_faults":
        STATE.faults.clear()
    elif path == "/_control/faults":
        STATE.faults.setdefault(body.get("route", "any"), []).extend(body.get("faults", []))
    elif path == "/_control/config":
        if "models" in body:
            STATE.ollama_models = list(body["models"])
        if "api_models" in body:
            STATE.api_models = list(body["api_models"])
        if "reply" in body:
            STATE.reply = body["reply"]
    elif path == "/_control/requests":
        return 200, {"requests": STATE.requests}
    return 200, {"ok": True}


def encode(status: int, payload: Any, headers: dict[str, str] | None = None, content_type: str | None = None) -> bytes:
    if isinstance(payload, (dict, list)):
        data = json.dumps(payload).encode()
        content_type = content_type or "application/json"
    else:
        data = str(payload).encode()
        content_type = content_type or "text/plain; charset=utf-8"
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def trickle(writer: asyncio.StreamWriter, data: bytes, seconds: float) -> None:
    """Send the head at once, then the body a byte at a time, ``seconds`` apart."""
    head, _, rest = data.partition(b"\r\n\r\n")
    writer.write(head + b"\r\n\r\n")
    await writer.drain()
    for index in range(len(rest)):
        await asyncio.sleep(seconds)
        writer.write(rest[index : index + 1])
        await writer.drain()


def abort_with_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            request = await read_request(reader)
            if request is None:
                return
            method, path, headers, raw = request
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {}
            route = route_of(method, path)
            if route == "control":
                writer.write(encode(*control(method, path, body)))
                await writer.drain()
                continue
            entry = {"method": method, "path": path, "route": route, "body": body, "headers": headers, "at": time.time()}
            STATE.requests.append(entry)
            fault = STATE.next_fault(route)
            kind = fault.get("type") if fault else "ok"
            if kind == "hang":
                await reader.read()  # until the client gives up
                return
            if kind == "reset":
                abort_with_reset(writer)
                return
            if kind == "delay" or (kind == "http" and "seconds" in fault):
                await asyncio.sleep(float(fault["seconds"]))
            if body.get("stream") is True and route == "chat" and kind in ("ok", "delay", "stream"):
                status, payload = answer(method, path, body)
                if status == 200:
                    text = payload["choices"][0]["message"]["content"] if "choices" in payload else payload["message"]["content"]
                    try:
                        reusable = await send_stream(writer, reader, path, body.get("model", ""), text, fault or {})
                    finally:  # whether the client hung up before the stream ended (a cancelled hedge does)
                        entry["client_closed"] = reader.at_eof()
                    if not reusable:
                        return
                    continue
                data = encode(status, payload)
            elif kind == "http":
                data = encode(fault["status"], fault.get("body", ""), fault.get("headers"), fault.get("content_type"))
            elif kind == "malformed":
                data = encode(200, '{"choices": [{"message": ', content_type="application/json")
            elif kind == "no_choices" and path == "/api/chat":
                data = encode(200, {"model": body.get("model"), "created_at": "2023-12-12T14:13:43Z", "done": True})
            elif kind == "no_choices":
                data = encode(200, {"id": "x", "object": "chat.completion", "choices": []})
            elif kind == "ok":
                data = encode(*answer(method, path, body), (fault or {}).get("headers"))
            elif kind == "trickle":
                await trickle(writer, encode(*answer(method, path, body)), float(fault.get("seconds", 1.0)))
                continue
            elif kind == "empty":
                status, payload = answer(method, path, body)
                if "choices" in payload:
                    payload["choices"][0]["message"]["content"] = ""
                elif "message" in payload:
                    payload["message"]["content"] = ""
                data = encode(status, payload)
            else:
                data = encode(*answer(method, path, body))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        if not writer.transport.is_closing():
            writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=2048)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
