"""The shared state on a real Redis (``patcode_core.state``): two ``SharedState`` objects play two instances.

One budget, one set of circuits and blocks, one cache and one set of counters between them; every key under the
prefix with a lifetime and nothing secret in it; and a Redis that stops, freezes and comes back while every
method keeps answering from the local state. The server is private (``tests/redis_server.py``); the outage
tests get one of their own.
"""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis_server import PATIENT_TIMEOUT, RedisServer, redis_server, redis_url  # noqa: F401

from patcode_core.i18n import t
from patcode_core.state import CLOSED, HALF_OPEN, OPEN, SharedState
from patcode_core.state.base import ADMITTED

KEY_SENTINEL = "gsk-SENTINELkey0123456789abcdef"
PROMPT_SENTINEL = "PROMPT-SENTINEL-do-not-store"


def since(started: float, seconds: float) -> float:
    """The least that may be left of ``seconds`` that began at ``started`` (10 ms of clock rounding allowed)."""
    return seconds - (time.monotonic() - started) - 0.01


async def rpm_wait(state: SharedState, provider: str, rpm: int) -> float:
    """Take one send from ``provider``'s budget through the admission: 0 when taken, else the seconds to wait."""
    return (await state.admit(provider, "any", rpm)).wait


async def blocked(state: SharedState, provider: str, model: str) -> float:
    """Seconds left of a quota block on ``provider``/``model``, as the admission sees it (0: not blocked)."""
    admission = await state.admit(provider, model, 0)
    return admission.wait if admission.verdict == "blocked" else 0.0


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[SharedState, SharedState]]:
    first, second = SharedState(redis_url, "pt", timeout=PATIENT_TIMEOUT), SharedState(redis_url, "pt", timeout=PATIENT_TIMEOUT)
    yield first, second
    await first.aclose()
    await second.aclose()


async def every_method(state: SharedState) -> dict[str, object]:
    """Call each method once; what each answered."""
    return {
        "admit": await state.admit("acme", "m0", 100),
        "block": await state.block("acme", "m1", 30),
        "blocked": await blocked(state, "acme", "m1"),
        "open_circuit": await state.open_circuit("acme", "m2", 30, f"authentication: 401 bad key {KEY_SENTINEL}"),
        "circuit": await state.circuit("acme", "m2"),
        "claim_probe": await state.claim_probe("acme", "m2", 30),
        "record_latency": await state.record_latency("acme", "m1", 0.25),
        "latencies": await state.latencies("acme", "m1"),
        "cache_put": await state.cache_put(f"a prompt: {PROMPT_SENTINEL}", '{"text": "hola"}', 60),
        "cache_get": await state.cache_get(f"a prompt: {PROMPT_SENTINEL}"),
        "next_turn": await state.next_turn("fallback"),
        "in_flight": await state.in_flight("acme", 1),
        "in_flight_counts": await state.in_flight_counts(),
        "close_circuit": await state.close_circuit("acme", "other"),
    }


async def test_rpm_budget_is_one_across_instances(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    started = time.monotonic()
    waits = [await rpm_wait((a if i % 2 else b), "acme", 5) for i in range(8)]
    assert waits[:5] == [0.0] * 5
    for wait in waits[5:]:  # the first send frees its place 60 s after it was taken
        assert 60 - (time.monotonic() - started) - 1 < wait <= 60
    # Taken at once from both instances: exactly the budget fits, never more (the script is atomic).
    results = await asyncio.gather(*(rpm_wait(a if i % 2 else b, "burst", 10) for i in range(30)))
    assert results.count(0.0) == 10
    assert await rpm_wait(a, "unlimited", 0) == 0.0


async def test_rpm_wait_is_right_and_the_place_frees(redis_url: str) -> None:
    a, b = (SharedState(redis_url, "pt", window=1.0, timeout=PATIENT_TIMEOUT),
            SharedState(redis_url, "pt", window=1.0, timeout=PATIENT_TIMEOUT))
    before = time.monotonic()
    assert await rpm_wait(a, "acme", 3) == 0.0
    after = time.monotonic()
    await asyncio.sleep(0.5)
    assert [await rpm_wait(b, "acme", 3), await rpm_wait(a, "acme", 3)] == [0.0, 0.0]
    asked = time.monotonic()
    wait = await rpm_wait(b, "acme", 3)
    answered = time.monotonic()
    # Until the first send is a window old; it was taken between `before` and `after` (bounds, not a guess at
    # how long a loaded machine took).
    assert before + 1.0 - answered - 0.01 <= wait <= after + 1.0 - asked + 0.01
    await asyncio.sleep(wait + 0.02)
    assert await rpm_wait(b, "acme", 3) == 0.0
    assert await rpm_wait(a, "acme", 3) > 0  # the other two are still in the window
    # The budget shrinks: the wait is until enough old sends leave, not just the oldest.
    assert await rpm_wait(a, "acme", 1) > 0.5
    await a.aclose()
    await b.aclose()


async def test_quota_block_seen_by_the_other_instance(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    assert await blocked(b, "acme", "m") == 0.0
    started = time.monotonic()
    await a.block("acme", "m", 1.0)
    assert since(started, 1.0) <= await blocked(b, "acme", "m") <= 1.0
    await b.block("acme", "m", 0.1)  # a shorter block never shortens a longer one
    assert since(started, 1.0) <= await blocked(a, "acme", "m")
    assert await blocked(a, "acme", "other") == 0.0
    await asyncio.sleep(started + 1.05 - time.monotonic())
    assert await blocked(b, "acme", "m") == 0.0


async def test_circuit_and_one_probe_across_instances(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    assert await b.circuit("acme", "m") == (CLOSED, 0.0)
    started = time.monotonic()
    await a.open_circuit("acme", "m", 1.0, "server_error")
    state, retry_in = await b.circuit("acme", "m")
    assert state == OPEN and since(started, 1.0) <= retry_in <= 1.0
    claims = await asyncio.gather(a.claim_probe("acme", "m", 5), b.claim_probe("acme", "m", 5),
                                  a.claim_probe("acme", "m", 5), b.claim_probe("acme", "m", 5))
    # one instance holds the lease (and renews it when it claims again); the other never gets it meanwhile
    assert claims in ([True, False, True, False], [False, True, False, True])
    await asyncio.sleep(started + 1.05 - time.monotonic())
    assert (await a.circuit("acme", "m")).state == HALF_OPEN
    await b.close_circuit("acme", "m")
    assert await a.circuit("acme", "m") == (CLOSED, 0.0)
    assert await a.claim_probe("acme", "m", 5)  # the lease went with the closed circuit


async def test_latencies_are_shared_and_capped(redis_url: str) -> None:
    a, b = (SharedState(redis_url, "pt", latencies_kept=5, timeout=PATIENT_TIMEOUT),
            SharedState(redis_url, "pt", latencies_kept=5, timeout=PATIENT_TIMEOUT))
    for i in range(8):
        await (a if i % 2 else b).record_latency("acme", "m", i / 10)
    assert await b.latencies("acme", "m") == [0.3, 0.4, 0.5, 0.6, 0.7]
    assert await a.latencies("acme", "other") == []
    await a.aclose()
    await b.aclose()


async def test_cache_hit_on_the_other_instance(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    digest = "ab" * 32
    assert await b.cache_get(digest) is None
    await a.cache_put(digest, '{"text": "hola"}', 60)
    assert await b.cache_get(digest) == '{"text": "hola"}'
    await a.cache_put("cd" * 32, '{"text": "breve"}', 0.2)
    await asyncio.sleep(0.25)
    assert await b.cache_get("cd" * 32) is None
    await a.cache_put("ef" * 32, "{}", 0)  # no lifetime: not kept
    assert await b.cache_get("ef" * 32) is None


async def test_counters_are_shared(pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    turns = [await (a if i % 2 else b).next_turn("rr") for i in range(6)]
    assert turns == [1, 2, 3, 4, 5, 6]
    assert await a.next_turn("other") == 1
    assert await a.in_flight("acme", 1) == 1
    assert await b.in_flight("acme", 1) == 1
    assert await b.in_flight("acme", 1) == 2
    assert await a.in_flight("beta", 1) == 1
    assert await a.in_flight_counts() == {"acme": 3, "beta": 1}
    assert await a.in_flight("beta", -1) == 0
    assert await a.in_flight("beta", -1) == 0  # never below 0
    assert await b.in_flight_counts() == {"acme": 3}


async def test_keys_are_namespaced_with_lifetimes_and_hold_no_secret(
        redis_server: RedisServer, pair: tuple[SharedState, SharedState]) -> None:
    a, b = pair
    for state in pair:
        await every_method(state)
    await a.in_flight("acme", -1)
    with redis_server.client() as raw:
        keys = sorted(raw.keys("*"))
        assert keys and all(key.startswith("pt:") for key in keys)
        assert {key.split(":")[1] for key in keys} == {"rpm", "block", "circuit", "probe", "latency", "cache", "turn", "busy"}
        for key in keys:
            assert raw.pttl(key) > 0, key
            kind = raw.type(key)
            value = {"string": raw.get, "hash": raw.hgetall, "list": lambda k: raw.lrange(k, 0, -1),
                     "zset": lambda k: raw.zrange(k, 0, -1, withscores=True)}[kind](key)
            for sentinel in (KEY_SENTINEL, PROMPT_SENTINEL):
                assert sentinel not in key and sentinel not in repr(value), key
        reason = raw.hget("pt:circuit:acme:m2", "reason")
        assert reason.startswith("authentication: 401 bad key") and "***" in reason


async def test_password_never_shown(redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    state = SharedState(redis_server.url(), "pt")
    assert redis_server.password not in repr(state) and "***" in repr(state)
    query = SharedState(f"redis://127.0.0.1:{redis_server.port}/0?password={redis_server.password}", "pt")
    assert redis_server.password not in repr(query)
    wrong = SharedState(redis_server.url(password="wrong-password-123"), "pt")
    assert await rpm_wait(wrong, "acme", 1) == 0.0  # refused by the server: the local state answers
    assert "wrong-password-123" not in capsys.readouterr().err
    with pytest.raises(ValueError):
        SharedState("http://127.0.0.1:1/", "pt")
    for one in (state, query, wrong):
        await one.aclose()


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("[WARNING]")]


async def test_redis_stopped_then_restarted(capsys: pytest.CaptureFixture[str]) -> None:
    server = RedisServer()
    try:
        a = SharedState(server.url(), "pt", retry_after=0.1, retry_max=0.4)
        b = SharedState(server.url(), "pt", retry_after=0.1, retry_max=0.4)
        await a.open_circuit("acme", "m", 30, "server_error")
        assert (await b.circuit("acme", "m")).state == OPEN
        capsys.readouterr()

        server.stop(kill=True)
        for _ in range(3):  # every method answers, quickly, from the local state
            started = time.monotonic()
            answers = await every_method(a)
            assert time.monotonic() - started < 2
        assert not a.shared
        assert answers["circuit"].state == OPEN and answers["cache_get"] == '{"text": "hola"}'
        assert answers["latencies"] == [0.25, 0.25, 0.25] and answers["next_turn"] == 3
        assert answers["in_flight_counts"] == {"acme": 3}
        assert [await rpm_wait(a, "solo", 2) for _ in range(3)][:2] == [0.0, 0.0]  # a local window, same rule
        assert await rpm_wait(a, "solo", 2) > 50
        assert await b.circuit("zeta", "m") == (CLOSED, 0.0)  # b knows nothing of a's local state
        err = capsys.readouterr().err
        warnings = warnings_in(err)
        assert len(warnings) == 2  # one per instance, however many calls
        assert t("log.state_redis_down", url=a.url, error="x").split("(")[0] in warnings[0]
        assert server.password not in err

        server.start()  # same port, empty server
        deadline = time.monotonic() + 5
        while not (a.shared and b.shared) and time.monotonic() < deadline:
            await blocked(a, "acme", "m")
            await blocked(b, "acme", "m")
            await asyncio.sleep(0.05)
        assert a.shared and b.shared
        await a.open_circuit("acme", "again", 30, "timeout")
        assert (await b.circuit("acme", "again")).state == OPEN
        assert await b.in_flight_counts() == {"acme": 3}  # a's own counts, written whole when it came back
        await b.cache_put("12" * 32, '{"text": "otra vez"}', 60)
        assert await a.cache_get("12" * 32) == '{"text": "otra vez"}'
        err = capsys.readouterr().err
        assert not warnings_in(err) and err.count("Redis") == 2  # one line each: back
        await a.aclose()
        await b.aclose()
    finally:
        server.close()


async def test_frozen_redis_is_a_timeout_not_a_hang(capsys: pytest.CaptureFixture[str]) -> None:
    server = RedisServer()
    try:
        state = SharedState(server.url(), "pt", retry_after=0.1, retry_max=0.2)
        assert await state.next_turn("rr") == 1
        server.pause()
        started = time.monotonic()
        answers = await every_method(state)
        assert time.monotonic() - started < 1.5  # one timeout (0.2 s per step), then no more network waits
        assert answers["admit"] == ADMITTED and answers["next_turn"] == 1  # the local counter starts anew
        assert len(warnings_in(capsys.readouterr().err)) == 1
        server.resume()
        deadline = time.monotonic() + 5
        while not state.shared and time.monotonic() < deadline:
            await blocked(state, "acme", "m")
            await asyncio.sleep(0.05)
        assert state.shared
        assert await state.next_turn("rr") == 2  # the shared counter was kept
        await state.aclose()
    finally:
        server.close()
