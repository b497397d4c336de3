"""An httpx transport that sends through aiohttp: the httpx API for plugins, a far cheaper client underneath.

httpx's own transport (httpcore over anyio) costs about 420 µs of CPU per
request on this kind of machine, aiohttp about 85 µs (measured with each
client alone against a loopback server). ``patcode serve`` spends most of
its time there, so it uses this transport when aiohttp is installed (the
``serve`` extra); the CLI keeps httpx's (``PATCODE_HTTP_CLIENT`` chooses).

What a plugin sees does not change: an ``httpx.Response`` whose body streams
as it arrives and is decoded (gzip, deflate) and bounded by httpx and
:mod:`patcode_core.wire.bounded_body`, never by aiohttp; httpx's timeouts
(connect, read) per request; and aiohttp's errors raised as the httpx errors
:mod:`patcode_core.wire.transport` classifies, with the socket's error as
their cause (so "no network" and "no DNS" are still told apart). Redirects
are never followed, cookies never kept. Proxies come from the environment
(``HTTPS_PROXY``, ``NO_PROXY``...), looked up once per host: aiohttp's own
``trust_env`` reads the environment again on every request, which doubled
the transport's cost.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx

CHUNK = 65536


def _as_httpx(exc: BaseException, request: httpx.Request, reading: bool) -> httpx.TransportError:
    """The httpx error for what aiohttp raised (``reading``: after the answer's headers)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        text = "peer closed connection without sending complete message body" if reading else \
            "Server disconnected without sending a response."
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientOSError | OSError):  # connected, then reset: not a refusal
        return httpx.ReadError(str(exc), request=request)
    return httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request)


def _cause(exc: BaseException) -> BaseException:
    """The socket's own error under aiohttp's, for :func:`~patcode_core.wire.transport.network_cause`."""
    os_error = getattr(exc, "os_error", None)
    return os_error if isinstance(os_error, BaseException) else exc


class _Body(httpx.AsyncByteStream):
    """The answer's raw bytes as they arrive; closing it early closes the connection (the server sees it)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                yield chunk
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise _as_httpx(exc, self._request, reading=True) from _cause(exc)

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Requests through one aiohttp session (created at the first request, on the running loop).

    :param limit: connections at most (aiohttp's pool queues the rest).
    :param tls: the verifying TLS context for ``https://`` (asked for only when one is needed).
    """

    def __init__(self, limit: int, tls: Callable[[], ssl.SSLContext]) -> None:
        self._limit = limit
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        """The environment's proxy for ``url``'s host (``None``: direct), looked up once per host."""
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            found = urllib.request.getproxies()
            bypass = urllib.request.proxy_bypass(url.host) if found else True
            self._proxies[key] = None if bypass else (found.get(url.scheme) or found.get("all"))
        return self._proxies[key]

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                auto_decompress=False,  # httpx decodes, and bounded_body caps the decoded size
                trust_env=False,  # proxies: _proxy, once per host
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read"))
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
                   if name.lower() not in (b"host", b"content-length", b"transfer-encoding")]
        body = await request.aread()
        try:
            answer = await self._open().request(
                request.method, str(request.url), headers=headers, data=body or None, allow_redirects=False,
                timeout=timeout, ssl=self._tls() if request.url.scheme == "https" else True, compress=None,
                proxy=self._proxy(request.url),
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise _as_httpx(exc, request, reading=False) from _cause(exc)
        return httpx.Response(
            answer.status,
            headers=[(name, value) for name, value in answer.raw_headers],
            stream=_Body(answer, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode("latin-1", "replace")},
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
