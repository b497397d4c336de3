"""A database server that hangs never hangs PatCode (``patcode_core.accounting.deadlines``).

The watchdog on a socket pair first, then a real PostgreSQL frozen with ``SIGSTOP`` (its connections stay open
and the kernel still accepts new ones, but nothing answers): requests are answered, lookups give up at their
deadline, figures fail with a message saying why, rows written meanwhile are counted as lost, and everything
works again once the server does. Then the same through a real ``patcode serve``.
"""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.server_process import FakeProviderServer
from gateway_process import GatewayProcess, loopback_provider_env
from helpers import FakeProvider, manager_with, wait_until
from postgres_server import PostgresServer

from patcode_core.accounting import store_postgres
from patcode_core.accounting.deadlines import NoAnswer, Watchdog
from patcode_core.accounting.history import summarize
from patcode_core.accounting.schema import Attempt
from patcode_core.accounting.store_postgres import PostgresStore
from patcode_core.accounting.store_target import masked_url
from patcode_core.errors import PatCodeError
from patcode_core.types import CachedAnswer

# -- the watchdog ---------------------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_a_call_past_its_deadline_is_cut_and_says_how_long_it_was_given(pair: tuple[socket.socket, socket.socket]) -> None:
    left, _ = pair
    watchdog = Watchdog()
    started = time.monotonic()
    with pytest.raises(NoAnswer, match=r"in 0\.3 s"), watchdog.guard(left.fileno, 0.3):
        assert left.recv(10) == b""  # the peer never writes: only the shutdown ends this wait
        raise ConnectionError("the end of stream a driver reports")
    assert 0.29 <= time.monotonic() - started < 2


def test_a_call_within_its_deadline_is_left_alone(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    watchdog = Watchdog()
    for _ in range(50):  # many short calls: none is cut, and none is taken for a cut one
        with watchdog.guard(left.fileno, 5):
            right.sendall(b"x")
            assert left.recv(1) == b"x"
    with pytest.raises(KeyError), watchdog.guard(left.fileno, 5):  # the body's own error is its own
        raise KeyError("mine")
    time.sleep(0.05)
    right.sendall(b"still open")
    assert left.recv(20) == b"still open"


def test_an_earlier_deadline_wakes_the_watchdog(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    watchdog = Watchdog()
    other_a, other_b = socket.socketpair()
    long_done = threading.Event()

    def long_call() -> None:
        with watchdog.guard(other_a.fileno, 30):
            long_done.wait(10)

    thread = threading.Thread(target=long_call)
    thread.start()
    time.sleep(0.05)  # the watchdog now sleeps until the 30 s deadline
    started = time.monotonic()
    with pytest.raises(NoAnswer), watchdog.guard(left.fileno, 0.2):
        left.recv(1)
        raise ConnectionError("cut")
    assert time.monotonic() - started < 2
    long_done.set()
    thread.join(5)
    other_b.sendall(b"y")
    assert other_a.recv(1) == b"y"  # the long call, finished in time, kept its connection
    other_a.close()
    other_b.close()


# -- a frozen PostgreSQL --------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A server of its own: these tests freeze it."""
    own = PostgresServer()
    yield own
    own.close()


async def test_a_frozen_server_delays_no_request_more_than_the_lookup_deadline(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(store_postgres, "WORK_DEADLINE", 1.0)
    monkeypatch.setattr(store_postgres, "FIRST_RETRY", 0.05)
    monkeypatch.setattr(store_postgres, "LAST_RETRY", 0.2)
    url = server.create_database()
    monkeypatch.setenv("LLM_STATS_STORE", url)
    monkeypatch.setenv("LLM_CACHE", "true")
    manager = manager_with(FakeProvider("alpha"))
    await manager.complete("antes")
    store = manager.usage.store
    assert isinstance(store, PostgresStore)
    store.flush()
    assert store.query("SELECT COUNT(*) FROM attempts") == [(1,)]

    server.pause()
    try:
        started = time.monotonic()
        answers = [await manager.complete(f"durante {index}") for index in range(5)]
        took = time.monotonic() - started
        assert [answer.text for answer in answers] == ["alpha answers"] * 5
        # the first lookup waits out its 0.5 s deadline, and the cut connection is not waited on again
        assert took < store_postgres.LOOKUP_DEADLINE + 1.5, took
        lookup = time.monotonic()
        assert store.cached("nope") is None and store.timings("alpha", "m1", 10) == []
        assert time.monotonic() - lookup < store_postgres.LOOKUP_DEADLINE  # a cut connection is not waited on
        started = time.monotonic()
        with pytest.raises(PatCodeError) as frozen:
            summarize(store)
        # bounded: the figures first wait for queued rows (flush, 10 s at most), then the read's own deadline
        assert time.monotonic() - started < 10 + 1.0 + 3
        assert masked_url(url) in str(frozen.value) and server.password not in str(frozen.value)
        store.flush(timeout=15)  # the writer gives each batch 1 s, then holds it
        assert store.held >= 5 and server.password not in (store.error or "")
    finally:
        server.resume()
    time.sleep(0.5)  # past the longest retry delay
    for index in range(3):
        await manager.complete(f"después {index}")
    store.flush()
    assert wait_until(lambda: store.held == 0) and store.lost == 0  # every row written once the server answers
    store.flush()
    assert store.query("SELECT COUNT(*) FROM attempts WHERE provider = 'alpha'") == [(1 + 5 + 3,)]
    await manager.aclose()
    assert "Traceback" not in capsys.readouterr().err


def test_a_frozen_backend_cuts_only_its_own_connection(server: PostgresServer) -> None:
    store = PostgresStore(server.create_database())
    try:
        store.put_cached("key", "alpha", "m1", 600, CachedAnswer("hola", "stop", 3, 4, "m1"))
        store.flush()
        backend = store._lookups._connection.info.backend_pid  # noqa: SLF001 - the lookup connection's own process
        os.kill(backend, signal.SIGSTOP)
        try:
            started = time.monotonic()
            store._recent.clear()  # noqa: SLF001 - the answer must come from the server, not from memory
            assert store.cached("key") is None  # given up at the deadline: a miss, never a wait
            assert store_postgres.LOOKUP_DEADLINE <= time.monotonic() - started < store_postgres.LOOKUP_DEADLINE + 1
            assert store.query("SELECT COUNT(*) FROM cache") == [(1,)]  # figures have a connection of their own
            store.record(Attempt(1_800_000_000.0, "alpha", "m1", "success"))
            store.flush()
            assert store.lost == 0  # and so has the writer
        finally:
            os.kill(backend, signal.SIGCONT)
        assert wait_until(lambda: store.cached("key") is not None)  # the writer thread opens it again
    finally:
        store.close()


def test_patcode_serve_keeps_answering_while_its_postgresql_is_frozen(
    server: PostgresServer, provider_server: FakeProviderServer, tmp_path: Path
) -> None:
    env = loopback_provider_env(openai=provider_server.url, LLM_FALLBACK_ORDER="openai",
                                LLM_STATS_STORE=server.create_database(), LLM_CACHE="true", LLM_HEDGE="off")
    gateway = GatewayProcess(tmp_path / "instance", env=env, lang="en").start()
    try:
        ask = {"model": "auto", "messages": [{"role": "user", "content": "hola"}]}
        assert httpx.post(f"{gateway.url}/v1/chat/completions", json=ask, timeout=30).status_code == 200
        server.pause()
        try:
            with httpx.Client(timeout=10) as http:
                started = time.monotonic()
                statuses = [http.post(f"{gateway.url}/v1/chat/completions",
                                      json={**ask, "messages": [{"role": "user", "content": f"otra {index}"}]}).status_code
                            for index in range(5)]
                assert statuses == [200] * 5
                assert time.monotonic() - started < 5  # one lookup deadline (0.5 s), then no wait at all
                assert http.get(f"{gateway.url}/healthz").status_code == 200
        finally:
            server.resume()
    finally:
        gateway.stop()
    assert "Traceback" not in gateway.output()


def test_the_page_of_a_gateway_whose_postgresql_is_gone_says_so_and_still_shows_the_providers(
    server: PostgresServer, provider_server: FakeProviderServer, tmp_path: Path
) -> None:
    env = loopback_provider_env(openai=provider_server.url, LLM_FALLBACK_ORDER="openai",
                                LLM_STATS_STORE=server.create_database(), LLM_HEDGE="off")
    gateway = GatewayProcess(tmp_path / "instance", env=env, lang="en").start()
    try:
        server.stop()
        with httpx.Client(timeout=60) as http:
            page = http.get(f"{gateway.url}/")
            answer = http.post(f"{gateway.url}/v1/chat/completions",
                               json={"model": "auto", "messages": [{"role": "user", "content": "hola"}]})
    finally:
        gateway.stop()
    assert page.status_code == 200 and 'data-provider="openai"' in page.text  # the page, not an error document
    assert "Cannot read the history at" in page.text and "Check that the PostgreSQL server is running" in page.text
    assert server.password not in page.text
    assert answer.status_code == 200
    assert "Traceback" not in gateway.output()
