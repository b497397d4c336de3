"""Circuits shared through Redis, in process: one instance checks an open circuit at a time, and a circuit one
instance opened is skipped by another without a request."""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import FakeProvider, manager_with
from redis_server import PATIENT_TIMEOUT, redis_server, redis_url  # noqa: F401

from patcode_core import hookimpl
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.types import Availability, CompletionRequest


class Down(FakeProvider):
    """A provider that fails every request and every check, counting the checks."""

    def __init__(self, name: str) -> None:
        super().__init__(name, priority=1)
        self.checks = 0

        def broken(request: CompletionRequest) -> Any:
            raise ProviderError(name, ErrorKind.SERVER_ERROR, "503")

        self.behaviour = broken

    @hookimpl
    async def provider_available(self, provider: str, context: Any) -> Availability:
        self.checks += 1
        return Availability(False, "still down", kind=ErrorKind.SERVER_ERROR)


@pytest.fixture
def on_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    """Managers made in the test share the private Redis, patient enough to count what is shared exactly."""
    monkeypatch.setenv("LLM_STATE_URL", redis_url)
    monkeypatch.setenv("LLM_STATE_TIMEOUT", str(PATIENT_TIMEOUT))


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch, on_redis: None) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_HEDGE", "off")


async def test_only_one_instance_checks_an_open_circuit(shared: None) -> None:
    first, second = Down("a"), Down("a")
    managers = [manager_with(first, FakeProvider("b", priority=2)), manager_with(second, FakeProvider("b", priority=2))]
    answers = await asyncio.gather(*(manager.complete("hola") for manager in managers))
    assert [answer.provider for answer in answers] == ["b", "b"]  # both saw a fail at once: both circuits opened here
    await asyncio.sleep(5.0)  # checks at about 1, 2 and 4 s
    assert sorted((first.checks, second.checks))[0] == 0 and max(first.checks, second.checks) >= 2
    for manager in managers:
        await manager.aclose()


async def test_a_circuit_opened_here_is_skipped_there_without_a_request(shared: None) -> None:
    first, second = Down("a"), Down("a")
    one = manager_with(first, FakeProvider("b", priority=2))
    other = manager_with(second, FakeProvider("b", priority=2))
    assert (await one.complete("hola")).provider == "b"
    await asyncio.sleep(0.2)  # the opening reaches Redis in the background
    answer = await other.complete("hola")
    assert answer.provider == "b" and second.calls == []
    assert any(failure.kind is ErrorKind.CIRCUIT_OPEN for failure in answer.failures)
    for manager in (one, other):
        await manager.aclose()


async def test_round_robin_turns_are_shared_by_instances(monkeypatch: pytest.MonkeyPatch, on_redis: None) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    managers = [manager_with(FakeProvider("a", priority=1), FakeProvider("b", priority=2)) for _ in range(2)]
    answers = [(await managers[call % 2].complete("hola")).provider for call in range(10)]
    assert answers == ["a", "b"] * 5  # each instance alone would have started at a: a, a, b, b...
    for manager in managers:
        await manager.aclose()


async def test_stream_timings_learned_by_one_instance_are_learned_by_another(
    monkeypatch: pytest.MonkeyPatch, on_redis: None
) -> None:
    from patcode_core.routing.learned_limits import MIN_SAMPLES

    monkeypatch.setenv("LLM_HEDGE", "off")
    monkeypatch.setenv("LLM_STATS_STORE", "off")  # no history file shared through the disk: only Redis
    teacher, learner = (manager_with(FakeProvider("a")) for _ in range(2))
    for _ in range(MIN_SAMPLES + 2):
        async for _event in teacher.stream("hola"):
            pass
    await asyncio.sleep(0.3)  # the timings reach Redis in the background
    assert not learner.learned_limits.limits("a", "m1", 30).learned
    async for _event in learner.stream("hola"):  # its first stream takes what every instance learned
        pass
    learned = learner.learned_limits.limits("a", "m1", 30)
    assert learned.learned and learned.samples >= MIN_SAMPLES + 2
    for manager in (teacher, learner):
        await manager.aclose()


async def test_least_busy_counts_the_requests_in_flight_on_every_instance(
    monkeypatch: pytest.MonkeyPatch, on_redis: None
) -> None:
    monkeypatch.setenv("LLM_ROUTING", "least-busy")
    slow = FakeProvider("a", priority=1)
    slow.delay = 1.0
    busy = manager_with(slow, FakeProvider("b", priority=2))
    other = manager_with(FakeProvider("a", priority=1), FakeProvider("b", priority=2))
    long_call = asyncio.ensure_future(busy.complete("hola"))
    await asyncio.sleep(0.3)  # a has one request in flight on the first instance, published
    assert (await other.complete("hola")).provider == "b"  # alone, this instance would have picked a
    assert (await long_call).provider == "a"
    for manager in (busy, other):
        await manager.aclose()


async def test_weighted_shares_hold_across_instances(monkeypatch: pytest.MonkeyPatch, on_redis: None) -> None:
    from collections import Counter

    monkeypatch.setenv("LLM_ROUTING", "weighted")
    monkeypatch.setenv("LLM_WEIGHTS", "a=3,b=1")
    managers = [manager_with(FakeProvider("a", priority=1), FakeProvider("b", priority=2)) for _ in range(2)]
    answers = Counter([(await managers[call % 2].complete("hola")).provider for call in range(40)])
    assert answers == {"a": 30, "b": 10}
    for manager in managers:
        await manager.aclose()


async def test_the_shared_cache_keeps_what_the_local_cache_keeps_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, on_redis: None
) -> None:
    from patcode_core.types import ProviderReply, Usage

    monkeypatch.setenv("LLM_CACHE", "true")
    monkeypatch.setenv("LLM_STATS_STORE", "off")  # no cache shared through the disk: only Redis
    providers = [FakeProvider("a"), FakeProvider("a")]
    for provider in providers:
        provider.behaviour = lambda request: ProviderReply(text="cut sho", finish_reason="length", usage=Usage(3, 4))
    one, other = (manager_with(provider) for provider in providers)
    assert not (await one.complete("hola", temperature=0)).cached
    await asyncio.sleep(0.2)
    assert not (await other.complete("hola", temperature=0)).cached  # an answer cut by the token limit is never cached
    assert len(providers[1].calls) == 1
    providers[0].behaviour = lambda request: ProviderReply(text="whole", finish_reason="stop", usage=Usage(3, 4))
    await one.complete("otra", temperature=0)
    await asyncio.sleep(0.2)
    assert (await other.complete("otra", temperature=0)).cached
    for manager in (one, other):
        await manager.aclose()


async def test_the_state_timeout_setting_reaches_the_shared_state(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("LLM_STATE_URL", redis_url)
    manager = manager_with(FakeProvider("a"))
    assert manager.shared.timeout == 0.2  # the documented default
    await manager.aclose()
    monkeypatch.setenv("LLM_STATE_TIMEOUT", "0.75")
    manager = manager_with(FakeProvider("a"))
    assert manager.shared.timeout == 0.75
    await manager.aclose()
