"""Every fault, both API styles, real sockets: the outcome, the attempts, the waits, the clock, the stats.

The primary provider talks to one loopback server process that injects the
fault; the fallback provider talks to a second, healthy one. For the
chat-completions style the primary is ``openai`` and the fallback ``ollama``;
for the Ollama style it is the other way round.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from fakes.server_process import FakeProviderServer, closed_port_url
from helpers import two_server_env

from patcode_core.errors import AllProvidersFailedError, ErrorKind, PatCodeError, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult

DEADLINE = 8.0
PRIMARY_TIMEOUT = 1.0
BASE_DELAY = 0.05
#: Server clocks and ours are the same clock; this only absorbs float rounding.
EPSILON = 0.005


@dataclass(frozen=True)
class Style:
    primary: str
    fallback: str

    def env(self, primary_url: str, fallback_url: str) -> dict[str, str]:
        return two_server_env(
            self.primary,
            self.fallback,
            primary_url,
            fallback_url,
            LLM_RETRY_BASE_DELAY=str(BASE_DELAY),
            LLM_REQUEST_DEADLINE=str(DEADLINE),
            **{f"{self.primary.upper()}_TIMEOUT": str(PRIMARY_TIMEOUT)},
        )


STYLES = {"api": Style("openai", "ollama"), "ollama": Style("ollama", "openai")}


def api_error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """The error body of the OpenAI API reference."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def http(status: int, body: Any, headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "status": status, "body": body, "headers": headers or {}, **extra}


@dataclass(frozen=True)
class Case:
    """One fault and what must follow.

    :param faults: per style, what the primary's server does to its requests.
    :param served_by: ``primary``, ``fallback`` or ``error`` (no fallback).
    :param seen: requests the primary's server receives.
    :param kind: the kind of the first failure (or of the raised error).
    :param min_gap: the least time between two requests to the primary.
    """

    faults: dict[str, list[dict[str, Any]]]
    served_by: str
    seen: int
    kind: ErrorKind | None
    min_gap: float = 0.0
    closed_port: bool = False
    then: str = ""
    styles: tuple[str, ...] = ("api", "ollama")
    extra_env: dict[str, str] = field(default_factory=dict)


def both(*faults: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {"api": list(faults), "ollama": list(faults)}


RATE_LIMIT_BODY = {
    "api": api_error("Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.", "requests", "rate_limit_exceeded"),
    "ollama": {"error": "too many requests"},
}


def per_style(make: Any) -> dict[str, list[dict[str, Any]]]:
    return {style: [make(style)] for style in STYLES}


CASES: dict[str, Case] = {
    "closed_port": Case({"api": [], "ollama": []}, "fallback", 0, ErrorKind.UNREACHABLE, closed_port=True),
    "reset_before_headers": Case(both({"type": "reset", "always": True}), "fallback", 3, ErrorKind.CONNECTION),
    "reset_once": Case(both({"type": "reset"}), "primary", 2, ErrorKind.CONNECTION),
    "never_answers": Case(both({"type": "hang"}), "fallback", 1, ErrorKind.TIMEOUT),
    "answers_slowly": Case(both({"type": "delay", "seconds": 0.3}), "primary", 1, None),
    "http_401": Case(
        {"api": [http(401, api_error("Incorrect API key provided: sk-fault***0000.", "invalid_request_error", "invalid_api_key"))],
         "ollama": [http(401, {"error": "unauthorized"})]},
        "fallback", 1, ErrorKind.AUTHENTICATION,
    ),
    "http_403": Case(
        {"api": [http(403, api_error("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory"))],
         "ollama": [http(403, "<html><body>403 Forbidden</body></html>", content_type="text/html")]},
        "fallback", 1, ErrorKind.AUTHENTICATION,
    ),
    "http_404_model": Case(
        {"api": [http(404, api_error("The model `gpt-4o-mini` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"))],
         "ollama": [http(404, {"error": "model 'qwen2.5-coder:1.5b' not found"})]},
        "fallback", 1, ErrorKind.MODEL_NOT_FOUND,
    ),
    "http_400_context_length": Case(
        {"api": [http(400, api_error("This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.", "invalid_request_error", "context_length_exceeded"))],
         "ollama": [http(400, {"error": "the input length exceeds the context length"})]},
        "fallback", 1, ErrorKind.CONTEXT_LENGTH,
    ),
    "http_400_content_filter": Case(
        {"api": [http(400, api_error("Your request was rejected as a result of our safety system.", "invalid_request_error", "content_policy_violation"))]},
        "error", 1, ErrorKind.CONTENT_FILTER, styles=("api",),
    ),
    "http_400_bad_request": Case(
        {"ollama": [http(400, {"error": "invalid options: num_predict"})]},
        "error", 1, ErrorKind.BAD_REQUEST, styles=("ollama",),
    ),
    "http_429_retry_after_ms": Case(
        per_style(lambda s: http(429, RATE_LIMIT_BODY[s], {"retry-after-ms": "300"})),
        "primary", 2, ErrorKind.RATE_LIMIT, min_gap=0.3,
    ),
    "http_429_retry_after_seconds": Case(
        per_style(lambda s: http(429, RATE_LIMIT_BODY[s], {"retry-after": "1"})),
        "primary", 2, ErrorKind.RATE_LIMIT, min_gap=1.0,
    ),
    "http_429_without_retry_after": Case(
        per_style(lambda s: http(429, RATE_LIMIT_BODY[s])),
        "primary", 2, ErrorKind.RATE_LIMIT, min_gap=BASE_DELAY / 2,
    ),
    "http_429_long_reset_headers": Case(
        per_style(lambda s: http(429, RATE_LIMIT_BODY[s], {
            "x-ratelimit-limit-requests": "30", "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "2m59.56s",
        })),
        "fallback", 1, ErrorKind.RATE_LIMIT, then="primary_skipped",
    ),
    "http_429_insufficient_quota": Case(
        {"api": [http(429, api_error("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "insufficient_quota"))]},
        "fallback", 1, ErrorKind.QUOTA_EXHAUSTED, styles=("api",),
    ),
    "success_with_requests_left_zero": Case(
        {style: [{"type": "ok", "headers": {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s",
                                             "x-ratelimit-remaining-tokens": "5990", "x-ratelimit-reset-tokens": "100ms"}}]
         for style in STYLES},
        "primary", 1, None, then="primary_skipped",
    ),
    "http_500_once": Case(
        per_style(lambda s: http(500, api_error("The server had an error while processing your request.", "server_error") if s == "api" else {"error": "internal error"})),
        "primary", 2, ErrorKind.SERVER_ERROR, min_gap=BASE_DELAY / 2,
    ),
    "http_503_always": Case(
        per_style(lambda s: {**http(503, api_error("The engine is currently overloaded, please try again later.", "server_error") if s == "api" else {"error": "server busy"}), "always": True}),
        "fallback", 3, ErrorKind.SERVER_ERROR, then="circuit_open",
    ),
    "malformed_json": Case(both({"type": "malformed", "always": True}), "fallback", 3, ErrorKind.MALFORMED_RESPONSE),
    "html_error_page_from_proxy": Case(
        both(http(502, "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>", content_type="text/html", always=True)),
        "fallback", 3, ErrorKind.SERVER_ERROR,
    ),
    "no_choices": Case(both({"type": "no_choices", "always": True}), "fallback", 3, ErrorKind.MALFORMED_RESPONSE),
}

PARAMS = [pytest.param(style, name, id=f"{style}-{name}") for name, case in CASES.items() for style in case.styles]


@pytest.mark.parametrize(("style_name", "case_name"), PARAMS)
async def test_fault(
    monkeypatch: pytest.MonkeyPatch,
    provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer,
    style_name: str,
    case_name: str,
) -> None:
    style, case = STYLES[style_name], CASES[case_name]
    primary_url = closed_port_url() if case.closed_port else provider_server.url
    for name, value in {**style.env(primary_url, fallback_server.url), **case.extra_env}.items():
        monkeypatch.setenv(name, value)
    if case.faults.get(style_name):
        provider_server.fault("chat", *case.faults[style_name])

    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        started = time.monotonic()
        outcome: CompletionResult | PatCodeError
        try:
            outcome = await manager.complete("hola")
        except PatCodeError as error:
            outcome = error
        elapsed = time.monotonic() - started
        stats = manager.stats()

        assert elapsed < DEADLINE
        primary_seen = provider_server.requests("chat")
        fallback_seen = fallback_server.requests("chat")
        assert len(primary_seen) == case.seen
        gaps = [later["at"] - earlier["at"] for earlier, later in zip(primary_seen, primary_seen[1:], strict=False)]
        assert all(gap >= case.min_gap - EPSILON for gap in gaps), gaps

        sent = 1 if case.closed_port else case.seen
        primary_stats = stats[style.primary]
        assert primary_stats.requests == sent and primary_stats.retries == sent - 1
        if case.served_by == "primary":
            assert isinstance(outcome, CompletionResult) and outcome.provider == style.primary
            assert outcome.attempts == case.seen and len(fallback_seen) == 0
            assert (primary_stats.successes, primary_stats.failures) == (1, case.seen - 1)
            assert [f.kind for f in outcome.failures] == [case.kind] * (case.seen - 1)
            assert style.fallback not in stats
        elif case.served_by == "fallback":
            assert isinstance(outcome, CompletionResult) and outcome.provider == style.fallback
            assert outcome.fallback_from == style.primary and len(fallback_seen) == 1
            assert outcome.failures[0].kind is case.kind
            assert (primary_stats.successes, primary_stats.failures) == (0, sent)
            assert (stats[style.fallback].requests, stats[style.fallback].successes) == (1, 1)
        else:
            assert isinstance(outcome, ProviderError) and outcome.kind is case.kind
            assert outcome.provider == style.primary and len(fallback_seen) == 0
            assert (primary_stats.successes, primary_stats.failures) == (0, 1)
            assert outcome.suggestion

        if case.then:
            # The next call must not touch the primary: its quota or its circuit says no.
            second = await manager.complete("otra vez")
            assert second.provider == style.fallback
            assert len(provider_server.requests("chat")) == case.seen
            skipped = second.failures[0]
            expected = ErrorKind.CIRCUIT_OPEN if case.then == "circuit_open" else ErrorKind.RATE_LIMIT
            assert skipped.kind is expected and skipped.skipped
            assert manager.stats()[style.primary].skipped == 1
            assert manager.stats()[style.primary].requests == sent


@pytest.mark.parametrize("style_name", STYLES)
async def test_deadline_bounds_a_body_trickled_forever(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    """Headers come at once, then a byte every 0.2 s: each read is quick, the whole never ends."""
    style = STYLES[style_name]
    env = style.env(provider_server.url, fallback_server.url)
    env.update({"LLM_REQUEST_DEADLINE": "1.5", f"{style.primary.upper()}_TIMEOUT": "30"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider_server.fault("chat", {"type": "trickle", "seconds": 0.2})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        started = time.monotonic()
        with pytest.raises(AllProvidersFailedError) as caught:
            await manager.complete("hola")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.3
    lines = str(caught.value).splitlines()
    assert lines[0] == "Se agotó el tiempo total de 1.5s (LLM_REQUEST_DEADLINE) sin respuesta:"
    assert lines[1].startswith(f"  - {style.primary}: se agotó el tiempo total de 1.5s")
    assert fallback_server.requests("chat") == []
    assert manager.stats()[style.primary].failures == 1


@pytest.mark.parametrize("style_name", STYLES)
async def test_deadline_names_every_attempt_across_providers(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    """Both providers fail slowly: the call still ends on time, listing each try."""
    style = STYLES[style_name]
    env = style.env(provider_server.url, fallback_server.url)
    env.update({"LLM_REQUEST_DEADLINE": "2", f"{style.fallback.upper()}_TIMEOUT": "30", "LLM_RETRY_BASE_DELAY": "0.2"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider_server.fault("chat", {"type": "reset", "always": True})
    fallback_server.fault("chat", {"type": "hang"})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        started = time.monotonic()
        with pytest.raises(AllProvidersFailedError) as caught:
            await manager.complete("hola")
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 0.3
    text = str(caught.value)
    assert f"  - {style.primary}: " in text and f"  - {style.primary} (intento 2): " in text
    assert f"  - {style.primary} (intento 3): " in text
    assert f"  - {style.fallback}: se agotó el tiempo total de 2s para la petición (LLM_REQUEST_DEADLINE)" in text
    assert [f.attempt for f in caught.value.failures] == [1, 2, 3, 1]


async def test_first_byte_limit_is_its_own(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """A server that takes 1 s to start answering, with LLM_FIRST_BYTE_TIMEOUT=0.3 and a generous OPENAI_TIMEOUT."""
    style = STYLES["api"]
    env = style.env(provider_server.url, fallback_server.url)
    env.update({"OPENAI_TIMEOUT": "10", "LLM_FIRST_BYTE_TIMEOUT": "0.3"})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider_server.fault("chat", {"type": "delay", "seconds": 1.0})
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        started = time.monotonic()
        result = await manager.complete("hola")
        elapsed = time.monotonic() - started
    assert result.provider == "ollama" and elapsed < 1.0
    failure = result.failures[0]
    assert failure.kind is ErrorKind.TIMEOUT and len(provider_server.requests("chat")) == 1
    assert failure.message == "el provider estuvo 0.3s sin enviar nada (LLM_FIRST_BYTE_TIMEOUT)"
    assert failure.suggestion.endswith("sube LLM_FIRST_BYTE_TIMEOUT (con streaming, las respuestas largas no necesitan más)")


async def test_groq_free_tier_rpm_over_real_sockets(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """GROQ_RPM=2: the third request in the minute goes to Ollama at once, without touching Groq."""
    for name, value in {
        "PATCODE_LOAD_PLUGINS": "groq,ollama",
        "GROQ_API_KEY": "gsk_fault_suite_key_0000000000000",
        "GROQ_BASE_URL": f"{provider_server.url}/openai/v1",
        "GROQ_RPM": "2",
        "OLLAMA_BASE_URL": fallback_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        started = time.monotonic()
        served = [(await manager.complete(f"q{i}")).provider for i in range(3)]
        elapsed = time.monotonic() - started
        stats = manager.stats()
    assert served == ["groq", "groq", "ollama"] and elapsed < 1
    assert len(provider_server.requests("chat")) == 2 and len(fallback_server.requests("chat")) == 1
    assert (stats["groq"].requests, stats["groq"].skipped) == (2, 1)


@pytest.mark.parametrize("style_name", STYLES)
async def test_retry_after_as_an_http_date_is_honoured(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer, style_name: str
) -> None:
    """``Retry-After: <HTTP date>`` about two seconds ahead: the retry goes to the same provider, not before that date."""
    from email.utils import formatdate, parsedate_to_datetime

    style = STYLES[style_name]
    for name, value in style.env(provider_server.url, fallback_server.url).items():
        monkeypatch.setenv(name, value)
    # HTTP dates have whole seconds: one 1.5 s ahead, rounded down, is 0.5 to 1.5 s away.
    when = formatdate(time.time() + 1.5, usegmt=True)
    provider_server.fault("chat", http(429, RATE_LIMIT_BODY[style_name], {"retry-after": when}))
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        result = await manager.complete("hola")
    seen = provider_server.requests("chat")
    assert result.provider == style.primary and len(seen) == 2 and fallback_server.requests("chat") == []
    assert seen[1]["at"] >= parsedate_to_datetime(when).timestamp() - EPSILON
