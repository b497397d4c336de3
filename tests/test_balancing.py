"""LLM_ROUTING: each strategy's spread over 10,000 simulated picks, and its behaviour when routes fail."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from helpers import FakeProvider, manager_with

from patcode_core.config import FallbackEntry
from patcode_core.errors import ConfigError, ErrorKind, ProviderError
from patcode_core.routing.balancing import EXPLORATION, Balancer, Candidate, parse_weights
from patcode_core.types import CompletionRequest

PICKS = 10_000
A, B, C = FallbackEntry("a", "m1"), FallbackEntry("b", "m1"), FallbackEntry("c", "m1")


def spread(balancer: Balancer, candidates: list[Candidate], picks: int = PICKS) -> Counter[str]:
    return Counter(candidates[balancer.pick(candidates)].entry.provider for _ in range(picks))


def test_round_robin_takes_each_route_in_turn() -> None:
    counts = spread(Balancer("round-robin"), [Candidate(A), Candidate(B), Candidate(C)])
    assert max(counts.values()) - min(counts.values()) <= 1 and sum(counts.values()) == PICKS


def test_weighted_follows_the_weights_exactly_and_smoothly() -> None:
    balancer = Balancer("weighted", parse_weights("a=3,b=1"))
    picks = [balancer.pick([Candidate(A), Candidate(B), Candidate(C)]) for _ in range(PICKS)]
    counts = Counter(picks)
    assert abs(counts[0] - PICKS * 3 / 5) <= 2 and abs(counts[1] - PICKS / 5) <= 2 and abs(counts[2] - PICKS / 5) <= 2
    longest = max(len(run) for run in "".join(map(str, picks)).replace("1", " ").replace("2", " ").split())
    assert longest <= 3  # interleaved, never a burst of a's


def test_least_latency_prefers_the_fastest_and_explores() -> None:
    balancer = Balancer("least-latency", rng=random.Random(7))
    for entry, seconds in ((A, 0.3), (B, 0.1), (C, 0.2)):
        balancer.observe(entry.provider, entry.model or "", seconds)
    counts = spread(balancer, [Candidate(A), Candidate(B), Candidate(C)])
    assert abs(counts["b"] / PICKS - (1 - EXPLORATION)) < 0.01
    assert abs(counts["a"] / PICKS - EXPLORATION / 2) < 0.008 and abs(counts["c"] / PICKS - EXPLORATION / 2) < 0.008


def test_least_latency_measures_a_new_route_first_and_lets_a_slow_one_recover() -> None:
    balancer = Balancer("least-latency", rng=random.Random(3))
    balancer.observe("a", "m1", 0.1)
    assert balancer.pick([Candidate(A), Candidate(B)]) == 1  # b was never measured
    true_latency = {"a": 0.1, "b": 2.0}
    picked: list[str] = []
    for call in range(4000):
        if call == 1000:
            true_latency["b"] = 0.05  # b recovers; only exploration can notice
        name = "ab"[balancer.pick([Candidate(A), Candidate(B)])]
        balancer.observe(name, "m1", true_latency[name])
        picked.append(name)
    assert Counter(picked[200:1000])["b"] / 800 < 0.1  # slow b gets only exploration
    assert Counter(picked[3000:])["b"] / 1000 > 0.9  # and then the traffic


def test_least_cost_picks_the_cheapest_and_unknown_prices_last() -> None:
    candidates = [Candidate(A, cost=None), Candidate(B, cost=0.002), Candidate(C, cost=0.001)]
    assert spread(Balancer("least-cost"), candidates) == {"c": PICKS}
    assert Balancer("least-cost").pick([Candidate(A, cost=None), Candidate(B, cost=None)]) == 0  # the order decides


def test_least_busy_picks_the_idlest_and_shares_ties() -> None:
    counts = spread(Balancer("least-busy"), [Candidate(A, in_flight=3), Candidate(B, in_flight=1), Candidate(C, in_flight=1)])
    assert counts["a"] == 0 and abs(counts["b"] - counts["c"]) <= 1


def test_quota_aware_prefers_the_most_headroom_and_unknown_last() -> None:
    candidates = [Candidate(A, remaining=None), Candidate(B, remaining=5), Candidate(C, remaining=900)]
    assert spread(Balancer("quota-aware"), candidates) == {"c": PICKS}
    assert Balancer("quota-aware").pick([Candidate(A), Candidate(B, remaining=0)]) == 1


@pytest.mark.parametrize("text", ["a=0", "a=-1", "a=x", "=2", "a=inf"])
def test_bad_weights_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_weights(text)


def test_a_bad_strategy_is_a_clear_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "random")
    with pytest.raises(ConfigError) as raised:
        manager_with(FakeProvider("a"))
    assert "LLM_ROUTING" in str(raised.value) and "round-robin" in str(raised.value)


# -- through the manager ---------------------------------------------------


def providers(*names: str, **options: Any) -> list[FakeProvider]:
    return [FakeProvider(name, priority=index, **options) for index, name in enumerate(names)]


async def test_round_robin_spreads_real_calls_and_stats_show_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    a, b, c = providers("a", "b", "c")
    manager = manager_with(a, b, c)
    answers = Counter([(await manager.complete("hola")).provider for _ in range(300)])
    assert answers == {"a": 100, "b": 100, "c": 100}
    from patcode_core.terminal.render import stats_block

    block = stats_block(manager)
    assert "round-robin" in block and "a 33.3% · b 33.3% · c 33.3%" in block
    await manager.aclose()


async def test_weighted_real_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "weighted")
    monkeypatch.setenv("LLM_WEIGHTS", "a=3,b=1")
    manager = manager_with(*providers("a", "b"))
    answers = Counter([(await manager.complete("hola")).provider for _ in range(400)])
    assert answers == {"a": 300, "b": 100}
    await manager.aclose()


async def test_unhealthy_routes_are_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    a, b, c = providers("a", "b", "c")
    c.key_env = "C_API_KEY"  # no key: never chosen, never sent to
    c.settings_class = FakeProvider("c").settings_class

    def broken(request: CompletionRequest) -> Any:
        raise ProviderError("a", ErrorKind.SERVER_ERROR, "down")

    a.behaviour = broken
    manager = manager_with(a, b, c)
    answers = Counter([(await manager.complete("hola")).provider for _ in range(60)])
    assert answers == {"b": 60}
    assert len(a.calls) == 1  # its circuit opened at the first failure: not chosen, not tried again
    assert c.calls == []
    await manager.aclose()


async def test_a_rate_limited_route_is_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    monkeypatch.setenv("A_RPM", "2")
    a, b = providers("a", "b")
    manager = manager_with(a, b)
    answers = Counter([(await manager.complete("hola")).provider for _ in range(20)])
    assert answers == {"a": 2, "b": 18}
    await manager.aclose()


async def test_the_chosen_route_failing_falls_back_along_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1000")
    a, b, c = providers("a", "b", "c")

    def broken(request: CompletionRequest) -> Any:
        raise ProviderError("b", ErrorKind.SERVER_ERROR, "down")

    b.behaviour = broken
    manager = manager_with(a, b, c)
    results = [await manager.complete("hola") for _ in range(30)]
    assert all(result.text.endswith("answers") for result in results)
    assert Counter(result.provider for result in results) == {"a": 20, "c": 10}  # b's turns went on to c
    assert len(b.calls) == 10
    await manager.aclose()


async def test_a_named_provider_is_never_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "round-robin")
    manager = manager_with(*providers("a", "b"))
    assert {(await manager.complete("hola", provider="b")).provider for _ in range(10)} == {"b"}
    await manager.aclose()


async def test_least_cost_uses_published_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_ROUTING", "least-cost")
    monkeypatch.setenv("LLM_PRICES", "a/m1=5:15,b/m1=0.1:0.2")
    manager = manager_with(*providers("a", "b"))
    assert {(await manager.complete("hola " * 200)).provider for _ in range(5)} == {"b"}
    await manager.aclose()


def test_weighted_by_a_shared_turn_gives_the_same_shares() -> None:
    balancer = Balancer("weighted", parse_weights("a=3,b=1.5"))
    candidates = [Candidate(A), Candidate(B), Candidate(C)]
    counts = Counter(candidates[balancer.pick(candidates, turn)].entry.provider for turn in range(5500))
    assert counts == {"a": 3000, "b": 1500, "c": 1000}
