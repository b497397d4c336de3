"""Several ``patcode serve`` instances sharing one PostgreSQL history and one Redis (issue 14, section 4).

Three real gateway processes write to one private PostgreSQL (``tests/postgres_server.py``) and share their state
through one private Redis (``tests/redis_server.py``, with a requests-per-minute budget in force); the test plays the
load balancer, sending each request to the next instance in turn from 8 concurrent clients. Every answer must be
booked once: the history adds up exactly, and any instance's figures (``llm stats --json``, the page) read the
same totals.
"""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.server_process import FakeProviderServer
from gateway_process import GatewayProcess, loopback_provider_env, patcode_command
from postgres_server import PostgresServer, postgres_server, postgres_url  # noqa: F401
from redis_server import PATIENT_TIMEOUT, redis_server, redis_url  # noqa: F401

CLIENTS, REQUESTS_EACH, INSTANCES = 8, 250, 3
ASK = {"model": "auto", "messages": [{"role": "user", "content": "hola"}]}


@pytest.fixture
def instances(
    tmp_path: Path, provider_server: FakeProviderServer, postgres_url: str, redis_url: str
) -> Iterator[list[GatewayProcess]]:
    env = loopback_provider_env(openai=provider_server.url, LLM_FALLBACK_ORDER="openai", LLM_STATS_STORE=postgres_url,
                                LLM_STATE_URL=redis_url, LLM_STATE_TIMEOUT=str(PATIENT_TIMEOUT), OPENAI_RPM="1000000", LLM_HEDGE="off")
    started = [GatewayProcess(tmp_path / f"instance-{index}", env=env, lang="en").start() for index in range(INSTANCES)]
    try:
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def test_history_from_every_instance_adds_up_exactly(
    instances: list[GatewayProcess], provider_server: FakeProviderServer, postgres_url: str, tmp_path: Path
) -> None:
    turns = itertools.cycle(range(INSTANCES))
    lock = threading.Lock()
    statuses: list[int] = []

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(REQUESTS_EACH):
                with lock:
                    target = instances[next(turns)].url
                statuses.append(http.post(f"{target}/v1/chat/completions", json=ASK).status_code)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    total = CLIENTS * REQUESTS_EACH
    assert statuses == [200] * total
    assert len(provider_server.requests("chat")) == total

    time.sleep(1.0)  # each instance's writer stores its rows within a quarter of a second
    page = httpx.get(f"{instances[1].url}/?since=1h", timeout=30).text
    row = re.search(r'<tr data-provider="openai" data-model="gpt-4o-mini">(.*?)</tr>', page)
    assert row is not None and f"<td class=num>{total}</td>" in row.group(1)

    for gateway in instances:
        gateway.stop()
    env = GatewayProcess(tmp_path / "reader", env={"LLM_STATS_STORE": postgres_url, "PATCODE_LOAD_PLUGINS": "openai"}).env
    shown = subprocess.run([str(patcode_command()), "llm", "stats", "--json"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    figures = {row["provider"]: row for row in json.loads(shown.stdout)["providers"]}
    assert figures["openai"]["requests"] == total and figures["openai"]["successes"] == total
    assert figures["openai"]["failures"] == 0
