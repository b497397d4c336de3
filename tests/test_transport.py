"""Retry-After parsing, transport error mapping and redaction."""

from __future__ import annotations

import errno
import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from patcode_core.errors import ErrorKind
from patcode_core.redact import redact
from patcode_core.wire.transport import retry_after_seconds, transport_error


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"retry-after": later}, now=now.timestamp()) == pytest.approx(30)


@pytest.mark.parametrize(
    ("exc", "kind", "message", "suggestion"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), ErrorKind.UNREACHABLE, "No se pudo conectar a http://h:1", "Verifica P_BASE_URL"),
        (
            httpx.ConnectTimeout("slow"),
            ErrorKind.TIMEOUT,
            "no se pudo abrir la conexión con http://h:1 en 30s",
            "La red o el servidor no responden; revisa tu conexión (o sube P_TIMEOUT)",
        ),
        (
            httpx.ReadTimeout("silent"),
            ErrorKind.TIMEOUT,
            "el provider estuvo 30s sin enviar nada (P_TIMEOUT)",
            "Sin streaming la respuesta llega entera al final: si el provider es lento o la respuesta es larga, "
            "sube P_TIMEOUT (con streaming, las respuestas largas no necesitan más)",
        ),
        (httpx.RemoteProtocolError("closed"), ErrorKind.CONNECTION, "la conexión con http://h:1 se cortó antes de completar la respuesta", None),
        (httpx.ReadError("reset"), ErrorKind.CONNECTION, "la conexión con http://h:1 se cortó antes de completar la respuesta", None),
    ],
)
def test_transport_errors(exc: httpx.TransportError, kind: ErrorKind, message: str, suggestion: str | None) -> None:
    error = transport_error("p", exc, url="http://h:1", timeout=30, url_var="P_BASE_URL", timeout_var="P_TIMEOUT")
    assert error.kind is kind and error.message == message
    if suggestion is not None:
        assert error.suggestion == suggestion


def _wrapped(cause: BaseException) -> httpx.ConnectError:
    """A ConnectError as httpx raises it: the socket's error down the chain."""
    try:
        try:
            raise cause
        except OSError as inner:
            raise httpx.ConnectError(str(inner)) from inner
    except httpx.ConnectError as outer:
        return outer


@pytest.mark.parametrize(
    "cause",
    [
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    ],
)
def test_offline_is_named_as_such_not_as_a_setting_the_user_never_set(cause: OSError) -> None:
    error = transport_error(
        "groq", _wrapped(cause), url="https://api.groq.com/openai/v1", timeout=30,
        url_var="GROQ_BASE_URL", timeout_var="GROQ_TIMEOUT", url_was_set=False,
    )
    assert error.kind is ErrorKind.UNREACHABLE
    assert error.message == "No se pudo resolver el nombre 'api.groq.com': no hay red o el DNS no responde"
    assert "GROQ_BASE_URL" not in error.message + error.suggestion
    assert error.suggestion.startswith("Revisa tu conexión a internet")


def test_a_set_url_that_does_not_resolve_names_the_setting_too() -> None:
    error = transport_error(
        "openai", _wrapped(socket.gaierror(socket.EAI_NONAME, "x")), url="http://llm.internal/v1", timeout=30,
        url_var="OPENAI_BASE_URL", timeout_var="OPENAI_TIMEOUT", url_was_set=True,
    )
    assert "llm.internal" in error.message and error.suggestion.endswith("Verifica OPENAI_BASE_URL")


def test_no_route_to_the_host() -> None:
    error = transport_error(
        "groq", _wrapped(OSError(errno.ENETUNREACH, "Network is unreachable")), url="https://api.groq.com/openai/v1",
        timeout=30, url_var="GROQ_BASE_URL", timeout_var="GROQ_TIMEOUT", url_was_set=False,
    )
    assert error.message == "No hay ruta de red hacia https://api.groq.com/openai/v1: la red está caída o no hay conexión"


def test_a_refused_default_url_blames_the_network_not_the_setting() -> None:
    error = transport_error(
        "groq", httpx.ConnectError("[Errno 111] Connection refused"), url="https://api.groq.com/openai/v1",
        timeout=30, url_var="GROQ_BASE_URL", timeout_var="GROQ_TIMEOUT", url_was_set=False,
    )
    assert error.suggestion == "Revisa tu conexión a internet (o el proxy)"


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: sk-proj-abcd****************wxyz. You can find your API key at ...",
        "Invalid API Key gsk_1234567890abcdefABCDEF",
        "Authorization: Bearer abcdefghijklmnop",
    ],
)
def test_redact_key_shapes(text: str) -> None:
    cleaned = redact(text)
    assert "***" in cleaned
    for fragment in ("abcd****", "gsk_1234567890", "abcdefghijklmnop"):
        assert fragment not in cleaned


def test_redact_known_secret_of_any_shape() -> None:
    assert redact("the key is hunter2hunter2!", ["hunter2hunter2"]) == "the key is ***!"


async def test_https_goes_through_one_shared_verifying_context(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from helpers import FakeProvider, manager_with

    from patcode_core.context import _OnFirstUse, shared_tls

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATCODE_HTTP_CLIENT", "httpx")  # this test looks at httpx's own transport
    monkeypatch.setenv("ALPHA_BASE_URL", "https://alpha.example")
    monkeypatch.setenv("BETA_BASE_URL", "https://beta.example")
    manager = manager_with(FakeProvider("alpha"), FakeProvider("beta"))
    clients = [manager._contexts[name].client for name in ("alpha", "beta")]
    for client in clients:
        [(pattern, lazy)] = [(p, t) for p, t in client._mounts.items() if isinstance(t, _OnFirstUse)]
        assert pattern.scheme == "https"
        transport = lazy._build()
        context = transport._pool._ssl_context
        assert context is shared_tls()
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded
        plain = client._transport._pool._ssl_context  # only ever used for http://
        assert plain.verify_mode is ssl.CERT_REQUIRED and plain.cert_store_stats()["x509_ca"] == 0
    await manager.aclose()


def test_a_proxy_in_the_environment_keeps_httpx_proxy_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    from patcode_core.context import _tls_options, shared_tls

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _tls_options(httpx.Limits()) == {"verify": shared_tls()}


def test_redact_a_google_api_key_quoted_back_by_the_provider() -> None:
    text = "Consumer 'api_key:AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW' has been suspended."
    assert "AIzaSy" not in redact(text) and "***" in redact(text)
