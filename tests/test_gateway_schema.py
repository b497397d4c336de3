"""The gateway against its own OpenAPI document (patcode_core/gateway/openapi.json), driven by Schemathesis.

Schemathesis reads the document (the app serves the same file at /openapi.json) and sends every operation generated
requests: the schema's examples, its boundary and invalid values (coverage phase) and random bodies, valid and
invalid (fuzzing phase, positive and negative modes). Every answer must:

- never be a 5xx other than the documented 502/503/504 (never a 500);
- have OpenAI's error shape when it is not a 2xx: a JSON object whose ``error`` has a string ``message`` and ``type``;
- match the document: status, Content-Type, headers and body (each SSE event of a stream too);
- answer what the document calls valid (2xx, or 404 for a model nobody serves) and refuse what it calls invalid (4xx).

Bodies that are not JSON, or not an object, under any Content-Type, and the errors outside the document (401, 404,
405, 413) are checked by the plain tests below. The app runs in-process (ASGI) with a bearer token; its only
provider is the openai plugin pointed at a fake loopback server (tests/fakes), so completions, plain and streamed,
really succeed. Deterministic: no example database, derandomized generation, fixed numbers of examples; nothing
reaches the internet.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fakes.server_process import FakeProviderServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from starlette.testclient import TestClient

DOCUMENT = Path(__file__).resolve().parents[1] / "patcode_core" / "gateway" / "openapi.json"
TOKEN = "schema-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Models the gateway routes to the fake server; most valid bodies get one so that completions run.
ROUTABLE = ("auto", "openai", "openai/gpt-4o-mini")
DOCUMENTED_5XX = (502, 503, 504)

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20240613,
        "generation": {
            "mode": "all",
            "max-examples": 200,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,  # the token goes in every request; 401s are tested below
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", *map(str, DOCUMENTED_5XX)]},
            # The fake provider is healthy: a valid body is answered, or names a model nobody serves (404).
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404"]},
        },
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        # Failure reports show the whole body (`max_tokens` is no secret); only the token is hidden.
        "output": {"sanitization": {"keys-to-sanitize": ["authorization"], "sensitive-markers": ["authorization"]}},
    }
)


def gateway_app(server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    """The gateway's ASGI app with a token; its one provider, openai, answers from the fake server."""
    from patcode_core.gateway.app import create_app
    from patcode_core.manager import LLMManager
    from patcode_core.plugins import PluginHost

    for name, value in {
        "PATCODE_LOAD_PLUGINS": "openai",
        "LLM_FALLBACK_ORDER": "openai",
        "LLM_MAX_RETRIES": "0",
        "OPENAI_API_KEY": "sk-loopback-schema-test-key-000000",
        "OPENAI_BASE_URL": f"{server.url}/v1",
    }.items():
        monkeypatch.setenv(name, value)
    return create_app(LLMManager(host=PluginHost.discover(), env_file=None), token=TOKEN, **options)


def error_shape_problem(status: int, payload: Any) -> str | None:
    """What is wrong with a non-2xx body, or None when it has OpenAI's error shape."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return f"{status}: the body is not {{'error': {{...}}}}: {payload!r:.300}"
    for field in ("message", "type"):
        if not isinstance(error.get(field), str) or not error[field]:
            return f"{status}: error.{field} is not a non-empty string: {payload!r:.300}"
    return None


def openai_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis check: a 5xx is one of the documented ones, and every non-2xx is OpenAI's error body."""
    status = response.status_code
    if status >= 500 and status not in DOCUMENTED_5XX:
        raise AssertionError(f"undocumented server error {status}: {response.text[:500]}")
    if 200 <= status < 300:
        return None
    try:
        payload = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{status} with a body that is not JSON: {response.content[:300]!r}") from None
    problem = error_shape_problem(status, payload)
    if problem:
        raise AssertionError(problem)
    return None


def aim_at_a_provider(case: Any) -> None:
    """A valid body usually names a routable model, so the completion runs; one in four keeps its generated name."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return
    if isinstance(case.body.get("model"), str):
        pick = zlib.crc32(json.dumps(case.body, sort_keys=True, default=str).encode()) % (len(ROUTABLE) + 1)
        if pick < len(ROUTABLE):
            case.body["model"] = ROUTABLE[pick]


@pytest.fixture
def app(provider_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    try:
        yield gateway_app(provider_server, monkeypatch)
    finally:
        asgi.shutdown_lifespans()  # the lifespan Schemathesis started (the app's manager) ends with the test


# Loaded from the file, which the app serves as is (test_the_served_document_is_the_file); each call gets the app.
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one app per operation, on purpose
def test_gateway_conforms_to_its_openapi_document(case: Any, app: Any) -> None:
    aim_at_a_provider(case)
    case.call_and_validate(app=app, headers=AUTH, additional_checks=[openai_error_shape])


@pytest.fixture
def client(provider_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with TestClient(gateway_app(provider_server, monkeypatch), base_url="http://127.0.0.1") as client:
        yield client


def test_the_served_document_is_the_file(client: TestClient) -> None:
    response = client.get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == json.loads(DOCUMENT.read_text(encoding="utf-8"))


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_JSON_NOT_AN_OBJECT = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8
).filter(lambda value: not isinstance(value, dict))
_NOT_A_REQUEST = st.one_of(
    st.binary(max_size=300),  # mostly not JSON, sometimes not UTF-8
    st.text(max_size=100).map(str.encode),
    _JSON_NOT_AN_OBJECT.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"", b"{", b'{"model": "auto", "messages": [', b'{"a": 1}{"b": 2}', b"\xef\xbb\xbf[]", b"[" * 5000]),
)
_CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "x/y; charset=latin-1"]
)


@settings(
    max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_NOT_A_REQUEST, content_type=_CONTENT_TYPES)
def test_a_body_that_is_not_a_request_is_a_400_whatever_its_content_type(
    client: TestClient, body: bytes, content_type: str | None
) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 400, (body[:80], content_type, response.status_code, response.text[:300])
    assert error_shape_problem(400, response.json()) is None


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/octet-stream"])
def test_a_valid_body_is_accepted_whatever_its_content_type(client: TestClient, content_type: str | None) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    body = json.dumps({"model": "openai", "messages": [{"role": "user", "content": "hola"}]})
    response = client.post("/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "api says: hola"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/v1/chat/completions", {}, 401),
        ("GET", "/v1/models", {"Authorization": "Bearer wrong-token-0123456789abcdef"}, 401),
        ("GET", "/readyz", {"Authorization": TOKEN}, 401),  # no "Bearer "
        ("GET", "/metrics", {}, 401),
        ("GET", "/v1/nothing-here", AUTH, 404),
        ("DELETE", "/v1/chat/completions", AUTH, 405),
        ("GET", "/v1/chat/completions", AUTH, 405),
        ("PUT", "/v1/models", AUTH, 405),
    ],
)
def test_errors_outside_the_document_have_openai_shape(
    client: TestClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert error_shape_problem(status, response.json()) is None


@pytest.mark.parametrize(
    ("fault", "stream", "status"),
    [
        ({"type": "http", "status": 500, "body": {"error": {"message": "boom", "type": "server_error"}}}, False, 502),
        ({"type": "malformed"}, False, 502),
        ({"type": "reset"}, True, 503),
        ({"type": "http", "status": 429, "body": {"error": {"message": "slow down", "type": "requests"}},
          "headers": {"retry-after": "3"}}, False, 429),
    ],
)
def test_provider_failures_are_documented_errors(
    client: TestClient, provider_server: FakeProviderServer, fault: dict[str, Any], stream: bool, status: int
) -> None:
    provider_server.fault("chat", fault)
    body = {"model": "openai", "messages": [{"role": "user", "content": "hola"}], "stream": stream}
    response = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert error_shape_problem(status, response.json()) is None
    schema["/v1/chat/completions"]["POST"].validate_response(response)


def test_a_body_over_the_limit_is_a_413(provider_server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"model": "openai", "messages": [{"role": "user", "content": "x" * 2000}]})
    with TestClient(gateway_app(provider_server, monkeypatch, max_body=1024), base_url="http://127.0.0.1") as client:
        response = client.post("/v1/chat/completions", content=body, headers=AUTH)
    assert response.status_code == 413, response.text
    assert error_shape_problem(413, response.json()) is None


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()["status"]) == (200, "ok")
