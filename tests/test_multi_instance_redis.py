"""Several ``patcode serve`` instances sharing one Redis (``LLM_STATE_URL``): one rate budget, one view of a dead
provider, one cache, and no failed request when Redis dies (issue 14, section 4).

Real gateway processes, a private ``redis-server`` (``tests/redis_server.py``) and loopback fake providers; the
test sends requests to the instances in turn, as a load balancer would.
"""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.server_process import FakeProviderServer
from gateway_process import GatewayProcess, loopback_provider_env
from redis_server import PATIENT_TIMEOUT, RedisServer, redis_server, redis_url  # noqa: F401

ASK = {"model": "auto", "messages": [{"role": "user", "content": "hola"}]}
KEY_SENTINEL = "gsk_loopback_gateway_test_key_000000"


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[Callable[..., list[GatewayProcess]]]:
    started: list[GatewayProcess] = []

    def start(count: int, **env: str) -> list[GatewayProcess]:
        for _ in range(count):
            started.append(GatewayProcess(tmp_path / f"instance-{len(started)}", env=env, lang="en").start())
        return started[-count:]

    yield start
    for gateway in started:
        gateway.stop()


def post(gateway: GatewayProcess, body: dict[str, Any] = ASK) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)


def test_one_rpm_budget_holds_across_instances(
    instances: Callable[..., list[GatewayProcess]], provider_server: FakeProviderServer, redis_url: str
) -> None:
    env = loopback_provider_env(groq=provider_server.url, LLM_FALLBACK_ORDER="groq", GROQ_RPM="30",
                                LLM_MAX_RATE_LIMIT_WAIT="0", LLM_STATE_URL=redis_url, LLM_STATE_TIMEOUT=str(PATIENT_TIMEOUT), LLM_HEDGE="off")
    gateways = instances(3, **env)
    turns = itertools.cycle(gateways)
    statuses = [post(next(turns)).status_code for _ in range(60)]
    assert len(provider_server.requests("chat")) == 30  # each instance alone would have sent 30: 60 in all
    assert statuses.count(200) == 30 and statuses.count(429) == 30


def test_a_circuit_opened_by_one_instance_is_skipped_by_the_others_without_a_request(
    instances: Callable[..., list[GatewayProcess]], provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer, redis_url: str,
) -> None:
    env = loopback_provider_env(groq=provider_server.url, openai=fallback_server.url, LLM_FALLBACK_ORDER="groq,openai",
                                LLM_STATE_URL=redis_url, LLM_STATE_TIMEOUT=str(PATIENT_TIMEOUT), LLM_HEDGE="off", LLM_BREAKER_THRESHOLD="3")
    first, second = instances(2, **env)
    provider_server.fault("chat", {"type": "http", "status": 500, "body": {"error": {"message": "down"}}, "always": True})
    for _ in range(3):
        assert post(first).status_code == 200  # answered by openai; groq's circuit opens at the third failure
    sent_to_groq = len(provider_server.requests("chat"))
    answers = [post(second) for _ in range(5)]
    assert all(answer.status_code == 200 and answer.headers["x-patcode-provider"] == "openai" for answer in answers)
    assert len(provider_server.requests("chat")) == sent_to_groq  # the second instance never asked groq


def test_an_answer_cached_by_one_instance_is_a_hit_on_another(
    instances: Callable[..., list[GatewayProcess]], provider_server: FakeProviderServer, redis_server: RedisServer,
    redis_url: str,
) -> None:
    env = loopback_provider_env(groq=provider_server.url, LLM_FALLBACK_ORDER="groq", LLM_CACHE="true",
                                LLM_STATE_URL=redis_url, LLM_STATE_TIMEOUT=str(PATIENT_TIMEOUT), LLM_HEDGE="off")
    first, second = instances(2, **env)
    provider_server.configure(reply="una respuesta fija")  # the answer does not echo the prompt
    body = {"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": "una pregunta cacheable"}]}
    assert post(first, body).headers.get("x-patcode-cached") is None
    hit = post(second, body)
    assert hit.status_code == 200 and hit.headers["x-patcode-cached"] == "true"
    assert hit.json()["choices"][0]["message"]["content"] == "una respuesta fija"
    assert len(provider_server.requests("chat")) == 1
    with redis_server.client() as client:
        stored = {key: client.type(key) for key in client.scan_iter("patcode:*")}
        assert stored and all(client.pttl(key) > 0 for key in stored)
        for key, kind in stored.items():
            value = client.get(key) if kind == "string" else str(client.dump(key))
            assert KEY_SENTINEL not in key and KEY_SENTINEL not in str(value)
            assert "una pregunta cacheable" not in key and "una pregunta cacheable" not in str(value)


def test_redis_killed_mid_run_fails_no_request(
    instances: Callable[..., list[GatewayProcess]], provider_server: FakeProviderServer, redis_server: RedisServer,
    redis_url: str,
) -> None:
    env = loopback_provider_env(groq=provider_server.url, LLM_FALLBACK_ORDER="groq", GROQ_RPM="100000",
                                LLM_STATE_URL=redis_url, LLM_HEDGE="off")
    gateways = instances(2, **env)
    statuses: list[int] = []
    stop = threading.Event()

    def client(gateway: GatewayProcess) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                statuses.append(http.post(f"{gateway.url}/v1/chat/completions", json=ASK).status_code)

    threads = [threading.Thread(target=client, args=(gateway,)) for gateway in gateways for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        stop.wait(1.0)
        redis_server.stop(kill=True)
        stop.wait(2.0)
        redis_server.start()
        stop.wait(2.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert len(statuses) > 100 and set(statuses) == {200}
    logs = "".join(gateway.output() for gateway in gateways)
    assert logs.count("Redis") >= 2 and "Traceback" not in logs


def test_a_rate_limit_one_instance_was_told_about_holds_for_the_others(
    instances: Callable[..., list[GatewayProcess]], provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer, redis_url: str,
) -> None:
    env = loopback_provider_env(groq=provider_server.url, openai=fallback_server.url, LLM_FALLBACK_ORDER="groq,openai",
                                LLM_STATE_URL=redis_url, LLM_STATE_TIMEOUT=str(PATIENT_TIMEOUT), LLM_HEDGE="off")
    first, second = instances(2, **env)
    provider_server.fault("chat", {"type": "http", "status": 429, "headers": {"retry-after": "30"}, "always": True,
                                   "body": {"error": {"message": "Rate limit reached", "type": "requests"}}})
    assert post(first).headers["x-patcode-provider"] == "openai"  # groq said 429, wait 30 s
    told = len(provider_server.requests("chat"))
    answers = [post(second) for _ in range(3)]
    assert all(answer.headers["x-patcode-provider"] == "openai" for answer in answers)
    assert len(provider_server.requests("chat")) == told  # the second instance waited the 30 s it was never told itself
