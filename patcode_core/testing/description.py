"""What a plugin tells the kit about its provider: a successful answer, each error and a stream, as they are on the wire.

The kit replays these answers to the plugin (with respx, no network) and
checks what the plugin makes of them. Nothing here is about one wire format:
a :class:`WireCase` is any JSON (or text) answer over HTTP, a
:class:`StreamCase` any stream of server-sent events or JSON lines.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from patcode_core.errors import ErrorKind
from patcode_core.routing.ratelimit import QuotaTracker, RateLimitHeaders
from patcode_core.types import Usage
from patcode_core.wire.transport import retry_after_seconds

#: The fake key the kit sets in ``<PREFIX>API_KEY`` unless a description gives its own.
#: Recognisable on purpose: it, or its last four characters, must never show in an error.
KIT_KEY = "pk-patcode-kit-3f9c1a7e5b2d4c6a-Zq8x"


class _Unset:
    """The marker of a field a description leaves out (``None`` is a value: "unknown cost")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class WireCase:
    """One answer of the provider's server, exactly as it arrives.

    :param status: the HTTP status.
    :param json: the JSON body (sent with ``content-type: application/json``).
    :param body: a body sent as it is, when it is not JSON (an HTML error page).
    :param headers: the answer's headers (``Retry-After``, ``x-ratelimit-*``...).
    :param method: the request it answers; by default the description's.
    :param path: the request's path under the base URL (or a whole URL); by default the description's.
    :param retry_after: the wait the error must carry (``ProviderError.retry_after``); when
        left out, the wait the headers ask for (``Retry-After``, ``retry-after-ms``), if any.
    :param label: a name for the test id (the status by default).
    """

    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None
    retry_after: float | None = None
    label: str = ""

    def response(self) -> httpx.Response:
        """A fresh response for one request (a body can be read once)."""
        if self.body is not None:
            return httpx.Response(self.status, headers=dict(self.headers), content=self.body)
        if self.json is not None:
            return httpx.Response(self.status, headers=dict(self.headers), json=self.json)
        return httpx.Response(self.status, headers=dict(self.headers))

    def expected_retry_after(self) -> float | None:
        """The wait the plugin must report for this answer, or ``None`` when the case asks none."""
        if self.retry_after is not None:
            return self.retry_after
        return retry_after_seconds(httpx.Headers(dict(self.headers)))

    def quota_wait(self, names: RateLimitHeaders | None) -> float:
        """How long the core itself holds this model back after this answer (its rate-limit headers)."""
        tracker = QuotaTracker(headers=names)
        tracker.observe("model", self.status, httpx.Headers(dict(self.headers)))
        return tracker.wait("model")


def sse_event(name: str, data: object) -> bytes:
    """One server-sent event with a name (``event: message_stop``), ready to put in a :class:`StreamCase`."""
    text = data if isinstance(data, str) else jsonlib.dumps(data)
    return f"event: {name}\ndata: {text}\n\n".encode()


_CONTENT_TYPES = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


@dataclass(frozen=True, slots=True)
class StreamCase:
    """A whole streamed answer, event by event, and where to cut it.

    :param events: the stream in order, end marker included. A dict is sent
        as JSON, a string as it is (``"[DONE]"``), bytes as an already framed
        event (:func:`sse_event`). With ``format="sse"`` each dict or string
        becomes ``data: ...`` and a blank line; with ``"ndjson"``, one line.
    :param cut_after: how many events the cut stream keeps: after some text,
        before the provider's end marker. The kit checks that a stream cut
        there (the body ends, or the connection is reset) is never returned
        as a whole answer.
    :param text: the whole text (by default the description's ``expected_text``).
    :param usage: the token counts the stream ends with, when it gives them.
    :param finish_reason: the ``FINISH_*`` word it must end with (any of them when left out).
    """

    events: Sequence[object]
    cut_after: int
    text: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    format: Literal["sse", "ndjson"] = "sse"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.format not in _CONTENT_TYPES:
            raise ValueError(f"StreamCase.format is 'sse' or 'ndjson', not {self.format!r}")
        if not 0 <= self.cut_after < len(self.events):
            raise ValueError(f"StreamCase.cut_after must keep fewer events than the {len(self.events)} of the stream")

    def frames(self) -> list[bytes]:
        """Each event as the bytes that travel."""
        return [self._frame(event) for event in self.events]

    def _frame(self, event: object) -> bytes:
        if isinstance(event, bytes):
            return event
        text = event if isinstance(event, str) else jsonlib.dumps(event)
        return f"data: {text}\n\n".encode() if self.format == "sse" else f"{text}\n".encode()

    def response_headers(self) -> dict[str, str]:
        """The stream's headers, with its content type unless the case names one."""
        headers = {"content-type": _CONTENT_TYPES[self.format]}
        headers.update(self.headers)
        return headers


@dataclass(frozen=True, slots=True)
class ErrorCase:
    """One described error: the kind the plugin must raise and the answer that causes it."""

    kind: ErrorKind
    wire: WireCase
    id: str


@dataclass(frozen=True)
class ProviderDescription:
    """Everything the conformance suite needs to know about one provider.

    :param plugin: the plugin object, or its entry point name in ``patcode.providers``.
    :param success: a successful answer to a plain (not streamed) request.
    :param expected_text: the text the plugin must read from ``success``.
    :param provider: which of the plugin's providers (by default its only one).
    :param method: the HTTP method of a completion request.
    :param path: its path under the base URL (``/chat/completions``); each case may name another.
    :param key: the fake key set in the provider's key variable (``None``: none is set).
    :param env: other variables for every check (``ACME_BASE_URL``, ``ACME_MODEL``...).
    :param expected_usage: the token counts of ``success``, when it gives them.
    :param finish_reason: the ``FINISH_*`` word of ``success`` (any of them when left out).
    :param cost: the cost of ``success`` in USD (``None``: unknown); when left
        out, the kit only checks that a model with a published price gets a cost.
    :param errors: by :class:`ErrorKind`, the answer (or answers) that must raise it.
    :param stream: a streamed answer, when the plugin streams.
    :param known_failures: checks known to fail, each with why (``"cost"``,
        ``"error_kind"``, ``"error_kind[rate_limit-429]"``...). Such a check
        is reported as an expected failure, and as a failure once it passes.
    """

    plugin: object
    success: WireCase
    expected_text: str
    provider: str | None = None
    method: str = "POST"
    path: str = ""
    key: str | None = KIT_KEY
    env: Mapping[str, str] = field(default_factory=dict)
    expected_usage: Usage | None = None
    finish_reason: str | None = None
    cost: float | None = UNSET
    errors: Mapping[ErrorKind, WireCase | Sequence[WireCase]] = field(default_factory=dict)
    stream: StreamCase | None = None
    known_failures: Mapping[str, str] = field(default_factory=dict)

    def error_cases(self) -> list[ErrorCase]:
        """Every described error, each with a test id (``rate_limit-429``, ``server_error-503``)."""
        cases: list[ErrorCase] = []
        seen: dict[str, int] = {}
        for kind, wires in self.errors.items():
            for wire in [wires] if isinstance(wires, WireCase) else list(wires):
                base = f"{ErrorKind(kind).value}-{wire.label or wire.status}"
                seen[base] = seen.get(base, 0) + 1
                cases.append(ErrorCase(ErrorKind(kind), wire, base if seen[base] == 1 else f"{base}-{seen[base]}"))
        return cases
