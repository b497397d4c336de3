"""``patcode serve``'s access rules as a real process: the bind rule, the token, the body limit, keys never shown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import openai
import pytest
from gateway_process import GatewayProcess, loopback_provider_env, patcode_command

from tests.fakes.server_process import FakeProviderServer

TOKEN = "server-token-for-tests-0123456789"
SENTINEL = "sk-SENTINEL-key-must-never-show-4242"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "hola"}]}


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``patcode serve`` expecting it to refuse to start."""
    base = GatewayProcess(tmp_path, env=env, lang="en").env
    return subprocess.run([str(patcode_command()), "serve", *args], env=base, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.internal"])
def test_a_bind_beyond_loopback_without_a_token_is_refused(tmp_path: Path, host: str) -> None:
    done = serve(tmp_path, "--host", host, "--port", "0")
    assert done.returncode == 2
    assert "PATCODE_SERVER_TOKEN" in done.stderr and "secrets.token_urlsafe" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    done = serve(tmp_path, "--host", "0.0.0.0", "--port", "0", PATCODE_SERVER_TOKEN="short")
    assert done.returncode == 2 and "16" in done.stderr and "Traceback" not in done.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = serve(tmp_path, "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2 and "--port" in done.stderr and "Traceback" not in done.stderr


def test_the_token_guards_the_api_and_the_page(tmp_path: Path, provider_server: FakeProviderServer) -> None:
    env = loopback_provider_env(openai=provider_server.url, PATCODE_SERVER_TOKEN=TOKEN)
    with GatewayProcess(tmp_path, env=env, lang="en") as gateway, gateway.client() as http:
        assert http.get("/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
            refused = http.post("/v1/chat/completions", json=ASK, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert http.get("/metrics").status_code == 401
        assert http.get("/").status_code == 401  # the login form, not the page
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="wrong-token-0123456789", max_retries=0) as sdk, \
                pytest.raises(openai.AuthenticationError):
            sdk.models.list()
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TOKEN, max_retries=0) as sdk:
            assert sdk.chat.completions.create(model="auto", messages=ASK["messages"]).choices[0].message.content


def test_an_oversized_body_is_a_413(tmp_path: Path, provider_server: FakeProviderServer) -> None:
    env = loopback_provider_env(openai=provider_server.url, PATCODE_SERVER_MAX_BODY="2048")
    with GatewayProcess(tmp_path, env=env, lang="en") as gateway, gateway.client() as http:
        big = {**ASK, "messages": [{"role": "user", "content": "x" * 5000}]}
        response = http.post("/v1/chat/completions", json=big)
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
        assert http.post("/v1/chat/completions", json=ASK).status_code == 200
    assert provider_server.requests("chat") and all("x" * 5000 not in str(r) for r in provider_server.requests("chat"))


def test_a_key_sentinel_appears_in_no_response_header_page_or_log(tmp_path: Path, provider_server: FakeProviderServer) -> None:
    env = loopback_provider_env(openai=provider_server.url, OPENAI_API_KEY=SENTINEL, LLM_FALLBACK_ORDER="openai",
                                LLM_LOG_CONTENT="true")
    provider_server.fault("chat", {"type": "http", "status": 401, "always": True,
                                   "body": {"error": {"message": f"Incorrect API key provided: {SENTINEL}",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}}})
    with GatewayProcess(tmp_path, env=env, lang="en") as gateway, gateway.client() as http:
        responses = [
            http.post("/v1/chat/completions", json=ASK),
            http.post("/v1/chat/completions", json={**ASK, "stream": True}),
            http.post("/v1/chat/completions", json={**ASK, "model": "openai/gpt-4o-mini"}),
            http.get("/v1/models"), http.get("/metrics"), http.get("/readyz"), http.get("/"), http.get("/?since=all"),
        ]
        log = gateway.output()
    assert responses[0].status_code == 502
    for response in responses:
        assert SENTINEL not in response.text and SENTINEL[-6:] not in response.text
        assert not any(SENTINEL in value for value in response.headers.values())
    assert SENTINEL not in log


def test_stopping_writes_the_history_and_exits_cleanly(tmp_path: Path, provider_server: FakeProviderServer) -> None:
    gateway = GatewayProcess(tmp_path, env=loopback_provider_env(openai=provider_server.url), lang="en").start()
    with gateway.client() as http:
        assert http.post("/v1/chat/completions", json=ASK).status_code == 200
    # uvicorn shuts down gracefully, then ends by the signal it caught, as a service manager expects.
    assert gateway.stop() in (0, -15)
    database = gateway.home / "patcode.db"
    assert database.exists() and (database.stat().st_mode & 0o077) == 0
    import sqlite3

    with sqlite3.connect(database) as db:
        assert ("openai", "success") in db.execute("SELECT provider, outcome FROM attempts").fetchall()
    assert "Traceback" not in gateway.output()
