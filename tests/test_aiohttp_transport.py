"""The aiohttp transport under httpx's API (``patcode serve``'s default): same errors, same streams, same bounds.

The unit tests drive it against the loopback fake server. The last test runs the real-server suites again in a
child pytest with ``PATCODE_HTTP_CLIENT=aiohttp``, so every fault those suites script (resets, hangs, cuts, stalls,
gzip bombs, hedged races, deadlines) is also proven over this transport.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fakes.server_process import FakeProviderServer, closed_port_url

from patcode_core.context import shared_tls
from patcode_core.errors import ErrorKind
from patcode_core.wire.aiohttp_transport import AiohttpTransport
from patcode_core.wire.transport import transport_error

ROOT = Path(__file__).resolve().parents[1]
CHILD = "PATCODE_AIOHTTP_CHILD"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hola"}]}


def client(url: str, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=AiohttpTransport(4, shared_tls), trust_env=False,
                             timeout=httpx.Timeout(5, **timeouts))


async def test_a_plain_answer_and_a_stream(provider_server: FakeProviderServer) -> None:
    async with client(provider_server.url) as http:
        plain = await http.post("/v1/chat/completions", json=BODY)
        assert plain.status_code == 200 and plain.json()["choices"][0]["message"]["content"] == "api says: hola"
        async with http.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as streamed:
            lines = [line async for line in streamed.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) > 3
    sent = provider_server.requests("chat")[-1]
    assert sent["headers"].get("content-type") == "application/json"


@pytest.mark.parametrize(("fault", "error", "kind"), [
    ({"type": "reset"}, httpx.ReadError, ErrorKind.CONNECTION),
    ({"type": "hang"}, httpx.ReadTimeout, ErrorKind.TIMEOUT),
])
async def test_faults_raise_the_httpx_errors_patcode_classifies(
    provider_server: FakeProviderServer, fault: dict[str, str], error: type[Exception], kind: ErrorKind
) -> None:
    provider_server.fault("chat", fault)
    async with client(provider_server.url, read=0.5) as http:
        with pytest.raises(error) as raised:
            await http.post("/v1/chat/completions", json=BODY)
    assert transport_error("x", raised.value, url="u", timeout=1, url_var="X_URL", timeout_var="X_TIMEOUT").kind is kind


async def test_a_closed_port_is_a_connect_error_a_cut_body_a_protocol_error(provider_server: FakeProviderServer) -> None:
    async with client(closed_port_url()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/v1/chat/completions", json=BODY)
    provider_server.fault("chat", {"type": "stream", "mode": "cut", "after": 1})
    async with client(provider_server.url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as streamed:
                async for _ in streamed.aiter_bytes():
                    pass


async def test_redirects_are_not_followed(provider_server: FakeProviderServer) -> None:
    provider_server.fault("chat", {"type": "http", "status": 307, "headers": {"location": "http://127.0.0.1:9/steal"}})
    async with client(provider_server.url) as http:
        answer = await http.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 307


async def test_the_proxy_is_read_from_the_environment_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    transport = AiohttpTransport(4, shared_tls)
    assert transport._proxy(httpx.URL("https://api.example/v1")) == "http://proxy.internal:3128"
    assert transport._proxy(httpx.URL("https://direct.example/v1")) is None
    monkeypatch.delenv("HTTPS_PROXY")
    assert transport._proxy(httpx.URL("https://api.example/v1")) == "http://proxy.internal:3128"  # remembered


@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="this is the child run")
def test_the_real_server_suites_pass_over_the_aiohttp_transport() -> None:
    suites = ["tests/test_loopback.py", "tests/test_fault_suite.py", "tests/test_stream_suite.py",
              "tests/test_hostile_output.py", "tests/test_outages.py", "tests/test_hedging.py",
              "tests/test_circuit_probes.py", "tests/test_streaming.py", "tests/test_transport.py"]
    env = {**os.environ, "PATCODE_HTTP_CLIENT": "aiohttp", CHILD: "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *suites],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.splitlines()[-1]
