"""A real HTTP/1.1 server on a loopback port, scripted with the kit's own descriptions, faults at the socket included.

respx replaces the transport inside the process: it cannot leave a request
unanswered, reset a connection, or send a body slowly. :class:`FaultServer`
can. It runs on its own event loop in a background thread of the test
process, so the plugin under test talks to it over a real socket::

    from patcode_core.testing import FaultServer, StreamCase, WireCase

    with FaultServer() as server:
        server.reply(WireCase(429, json={"error": "slow down"}, headers={"Retry-After": "7"}))
        server.stream(StreamCase(events=[...], cut_after=2), cut_after=2)   # 2 events, then the connection closes
        server.hang()                                                       # reads the request, never answers
        # ... point the plugin at server.base_url and call it ...
        assert server.requests[0].query == {"alt": "sse"}

Each request takes the first scripted answer that matches it (the case's
``method`` and ``path``, when it names them; a path matches the end of the
request's, so ``/chat/completions`` matches ``/v1/chat/completions``), in
the order they were scripted; ``times=n`` answers ``n`` requests, ``times=None``
every one. A request nothing matches gets a 404 (:data:`UNDESCRIBED`), as
with respx. Every request is recorded (:class:`RecordedRequest`), with whether
the client hung up on it.

Do not use it inside ``respx.mock(assert_all_mocked=True)``: respx would take
the requests to the loopback port too.

.. versionadded:: 0.2
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from patcode_core.testing.description import StreamCase, WireCase
from patcode_core.testing.wire import UNDESCRIBED

Cut = Literal["close", "reset", "end"]


@dataclass(eq=False)
class RecordedRequest:
    """One request as the server read it.

    :param method: ``POST``, ``GET``...
    :param path: the path, without the query string.
    :param query: the query string's parameters (the last value of a repeated one).
    :param headers: the headers, names lower-cased.
    :param body: the body as it arrived.
    :param answer: what the server did with it (``reply 429``, ``stream cut_after=2``, ``hang``, ``undescribed``...).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    answer: str = ""
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def json(self) -> Any:
        """The body as JSON (``None`` when it is empty or not JSON)."""
        try:
            return jsonlib.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def client_closed(self) -> bool:
        """Whether the client hung up before the server was done with this request (a timeout, a cancelled stream)."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float = 2.0) -> bool:
        """Wait until the client hangs up on this request; whether it did within ``timeout`` seconds."""
        return self._closed.wait(timeout)


@dataclass
class _Plan:
    """One scripted answer and how many requests it still answers (``None``: every one)."""

    kind: Literal["reply", "stream", "hang", "reset"]
    case: WireCase | StreamCase | None = None
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    delay: float = 0.0
    trickle: float = 0.0
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    stall_after: int | None = None
    cut_after: int | None = None
    cut: Cut = "close"

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if not self.path:
            return True
        wanted = urlsplit(self.path).path if self.path.startswith(("http://", "https://")) else self.path
        wanted = "/" + wanted.strip("/")
        return path.rstrip("/") == wanted or path.rstrip("/").endswith(wanted)

    def server_hangs_up(self) -> bool:
        """Whether this answer ends with the server closing the connection (so its end says nothing of the client)."""
        return self.kind == "reset" or (self.kind == "stream" and self.cut_after is not None and self.cut != "end")

    def label(self) -> str:
        if self.kind == "reply":
            return f"reply {self.case.status}"  # type: ignore[union-attr]
        if self.kind == "stream":
            if self.stall_after is not None:
                return f"stream stall_after={self.stall_after}"
            if self.cut_after is not None:
                return f"stream cut_after={self.cut_after} ({self.cut})"
            return "stream"
        return self.kind


def _head(status: int, defaults: dict[str, str], headers: Any) -> bytes:
    """The status line and headers: ``defaults`` unless ``headers`` names them (case-insensitively)."""
    given = {name.lower() for name in dict(headers)}
    lines = [f"HTTP/1.1 {status} {_phrase(status)}"]
    lines += [f"{name}: {value}" for name, value in defaults.items() if name.lower() not in given]
    lines += [f"{name}: {value}" for name, value in dict(headers).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with an RST, as a crashed server or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, target with its query, lower-cased headers, body) of the next request; ``None`` when the client left.

    Reads a ``Content-Length`` body or a chunked one.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    else:
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


class FaultServer:
    """A scriptable HTTP/1.1 server on ``127.0.0.1``, in a thread of its own; a context manager.

    Script it with :meth:`reply`, :meth:`stream`, :meth:`hang` and :meth:`reset`;
    read what it was asked in :attr:`requests`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._plans: list[_Plan] = []
        self._requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._server is None:
            raise RuntimeError("the FaultServer is not started: use it as a context manager, or call start()")
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        """``path`` under :attr:`base_url`."""
        return self.base_url + ("/" + path.lstrip("/") if path else "")

    def start(self) -> FaultServer:
        """Listen (on a free port unless one was given) and answer in a background thread."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="patcode-fault-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or self._server is None:
            self._thread.join(1)
            loop.close()
            self._thread = self._loop = None
            raise RuntimeError(f"the FaultServer could not listen on {self.host}:{self.port}") from (failure[0] if failure else None)
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection (a hanging answer included)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = self._thread = self._server = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------

    def reply(self, case: WireCase, *, delay: float = 0.0, trickle: float = 0.0, times: int | None = 1) -> None:
        """Queue a plain answer: ``case``'s status, headers and body (JSON or raw).

        :param delay: seconds of silence before the headers.
        :param trickle: send the body one byte at a time, this many seconds apart (the headers at once).
        :param times: how many requests it answers (``None``: every one).
        """
        self._queue(_Plan("reply", case, case.method, case.path, times, delay=delay, trickle=trickle))

    def stream(
        self,
        case: StreamCase,
        *,
        delay: float = 0.0,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        trickle: float = 0.0,
        stall_after: int | None = None,
        cut_after: int | None = None,
        cut: Cut = "close",
        times: int | None = 1,
    ) -> None:
        """Queue a streamed answer: ``case``'s events in its format (SSE or NDJSON), in a chunked body.

        :param delay: seconds of silence before the headers.
        :param first_token_delay: seconds of silence between the headers (sent at once) and the first event.
        :param token_delay: seconds between one event and the next.
        :param trickle: send each event one byte at a time, this many seconds apart.
        :param stall_after: send this many events, then nothing, the connection open, until the client hangs up
            (``0``: headers, then silence).
        :param cut_after: send this many events, then end the connection as ``cut`` says
            (``case.cut_after`` is the description's own cut point).
        :param cut: ``"close"`` (closed without the body's last chunk), ``"reset"`` (an RST), or
            ``"end"`` (the body ends cleanly, without the stream's own end marker).
        :param times: how many requests it answers (``None``: every one).
        """
        if stall_after is not None and cut_after is not None:
            raise ValueError("a stream either stalls (stall_after) or is cut (cut_after), not both")
        for name, value in (("stall_after", stall_after), ("cut_after", cut_after)):
            if value is not None and not 0 <= value <= len(case.events):
                raise ValueError(f"{name}={value}: the stream has {len(case.events)} events")
        if cut not in ("close", "reset", "end"):
            raise ValueError(f"cut is 'close', 'reset' or 'end', not {cut!r}")
        self._queue(_Plan("stream", case, case.method, case.path, times, delay=delay, trickle=trickle,
                          first_token_delay=first_token_delay, token_delay=token_delay,
                          stall_after=stall_after, cut_after=cut_after, cut=cut))

    def hang(self, *, method: str | None = None, path: str | None = None, times: int | None = 1) -> None:
        """Queue a request that is read and never answered: the connection stays open until the client gives up."""
        self._queue(_Plan("hang", method=method, path=path, times=times))

    def reset(self, *, method: str | None = None, path: str | None = None, times: int | None = 1) -> None:
        """Queue a request that is read and answered with an RST: no status, no headers."""
        self._queue(_Plan("reset", method=method, path=path, times=times))

    def clear(self) -> None:
        """Forget the scripted answers and the recorded requests."""
        with self._lock:
            self._plans.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in order of arrival."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many scripted answers no request has taken yet (one that answers every request counts once)."""
        with self._lock:
            return len(self._plans)

    def _queue(self, plan: _Plan) -> None:
        if plan.times is not None and plan.times < 1:
            raise ValueError(f"times={plan.times}: at least 1, or None for every request")
        with self._lock:
            self._plans.append(plan)

    def _take(self, method: str, path: str) -> _Plan | None:
        with self._lock:
            for index, plan in enumerate(self._plans):
                if plan.matches(method, path):
                    if plan.times is not None:
                        plan.times -= 1
                        if plan.times == 0:
                            del self._plans[index]
                    return plan
        return None

    # -- answering -----------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                read = await read_request(reader)
                if read is None:
                    return
                method, target, headers, body = read
                parts = urlsplit(target)
                plan = self._take(method, parts.path)
                recorded = RecordedRequest(method, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                                           headers, body, plan.label() if plan else "undescribed")
                with self._lock:
                    self._requests.append(recorded)
                try:
                    keep = await self._answer(plan, reader, writer)
                finally:
                    if reader.at_eof() and not (plan and plan.server_hangs_up()):
                        recorded._closed.set()
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _answer(self, plan: _Plan | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request as ``plan`` says; whether the connection can take another."""
        if plan is None:
            data = UNDESCRIBED.encode()
            writer.write(_head(404, {"content-type": "text/plain; charset=utf-8", "content-length": str(len(data))}, {}) + data)
            await writer.drain()
            return True
        if plan.kind == "hang":
            await reader.read()  # until the client gives up
            return False
        if plan.kind == "reset":
            _reset(writer)
            return False
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.kind == "reply":
            assert isinstance(plan.case, WireCase)
            await self._reply(plan, plan.case, writer)
            return True
        assert isinstance(plan.case, StreamCase)
        return await self._stream(plan, plan.case, reader, writer)

    async def _reply(self, plan: _Plan, case: WireCase, writer: asyncio.StreamWriter) -> None:
        defaults: dict[str, str] = {}
        if case.body is not None:
            data = case.body.encode() if isinstance(case.body, str) else bytes(case.body)
        elif case.json is not None:
            data = jsonlib.dumps(case.json).encode()
            defaults["content-type"] = "application/json"
        else:
            data = b""
        defaults["content-length"] = str(len(data))
        writer.write(_head(case.status, defaults, case.headers))
        await self._send(writer, data, plan.trickle)

    async def _stream(self, plan: _Plan, case: StreamCase, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        frames = case.frames()
        limit = plan.stall_after if plan.stall_after is not None else plan.cut_after
        writer.write(_head(case.status, {"transfer-encoding": "chunked"}, case.response_headers()))
        await writer.drain()
        if plan.first_token_delay:
            await asyncio.sleep(plan.first_token_delay)
        for index, frame in enumerate(frames[:limit]):
            if index and plan.token_delay:
                await asyncio.sleep(plan.token_delay)
            if plan.trickle:
                for byte in range(len(frame)):
                    await self._send(writer, _chunk(frame[byte : byte + 1]), 0.0)
                    await asyncio.sleep(plan.trickle)
            else:
                await self._send(writer, _chunk(frame), 0.0)
        if plan.stall_after is not None:
            await reader.read()  # silence, the connection open, until the client hangs up
            return False
        if plan.cut_after is not None and plan.cut == "reset":
            _reset(writer)
            return False
        if plan.cut_after is not None and plan.cut == "close":
            writer.close()  # no last chunk: the body is incomplete
            return False
        await self._send(writer, b"0\r\n\r\n", 0.0)
        return True

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, data: bytes, trickle: float) -> None:
        if not trickle:
            writer.write(data)
            await writer.drain()
            return
        await writer.drain()
        for index in range(len(data)):
            await asyncio.sleep(trickle)
            writer.write(data[index : index + 1])
            await writer.drain()


def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer`, stopped when the generator closes: the body of a pytest fixture.

    ``patcode_fault_server = pytest.fixture(fault_server, name="patcode_fault_server")`` in a
    ``conftest.py`` makes it one.
    """
    with FaultServer() as server:
        yield server
