"""The provider's server, played by respx: each described answer on its route, anything else a 404.

.. note:: respx replaces the HTTP transport inside the process. A real
   server on a loopback port (slow bodies, resets at the socket) is for a
   later version of the kit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import respx

from patcode_core.testing.description import StreamCase, WireCase

#: What a request no case describes gets: a plain 404, as a server would answer a wrong path.
UNDESCRIBED = "patcode kit: no answer described for this request"


def url_of(base_url: str, path: str) -> httpx.URL:
    """``path`` under ``base_url`` (``/chat/completions`` under ``https://api.acme.test/v1``), or ``path`` if it is a URL."""
    if path.startswith(("http://", "https://")):
        return httpx.URL(path)
    return httpx.URL(base_url.rstrip("/") + "/" + path.lstrip("/") if path else base_url)


def _route(router: respx.MockRouter, method: str, url: httpx.URL) -> respx.Route:
    """A route on method, scheme, host, port and path; the query string is free (keys in it, ``?alt=sse``)."""
    pattern: dict[str, object] = {"method": method.upper(), "scheme": url.scheme, "host": url.host, "path": url.path}
    if url.port is not None:
        pattern["port"] = url.port
    return router.route(**pattern)


@contextmanager
def serve(method: str, url: httpx.URL, answer: WireCase | StreamCase, *, cut: str | None = None) -> Iterator[respx.Route]:
    """While inside, ``method url`` gets ``answer`` (a fresh one per request); yields the route, to count its calls.

    :param cut: for a stream, ``"eof"`` (the body ends after ``cut_after``
        events) or ``"reset"`` (the connection breaks there).
    """
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        route = _route(router, method, url)
        if isinstance(answer, StreamCase):
            route.side_effect = lambda request: stream_response(answer, cut)
        else:
            route.side_effect = lambda request: answer.response()
        router.route().respond(404, text=UNDESCRIBED)
        yield route


@contextmanager
def serve_everywhere(answer: WireCase) -> Iterator[respx.Route]:
    """While inside, every request gets ``answer`` (the key-leak check reads every hook's errors)."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        route = router.route()
        route.side_effect = lambda request: answer.response()
        yield route


def stream_response(case: StreamCase, cut: str | None = None) -> httpx.Response:
    """The stream as an answer whose body arrives frame by frame; cut as ``cut`` says."""
    frames = case.frames()
    if cut is not None:
        frames = frames[: case.cut_after]

    async def body() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame
        if cut == "reset":
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    return httpx.Response(case.status, headers=case.response_headers(), content=body())
