"""Open circuits checked in the background, and no traffic to a failing provider beyond what it takes (issue 11).

Real sockets where the network matters: ``openai`` talks to one loopback
server process that injects the fault, ``ollama`` to a second, healthy one.
The check schedule is shortened per test through ``manager.prober.schedule``,
except where the defaults themselves are what is tested.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from fakes.server_process import FakeProviderServer
from helpers import FakeProvider, failing, manager_with, two_server_env

from patcode_core import hookimpl
from patcode_core.connection_slots import MAX_CONNECTIONS
from patcode_core.errors import ErrorKind
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.routing.breaker import BreakerBoard, CircuitBreaker, CircuitState
from patcode_core.routing.circuit_probes import ProbeSchedule
from patcode_core.routing.router import Router
from patcode_core.types import Availability, ProviderReply

OVERLOADED = {"error": {"message": "The engine is currently overloaded", "type": "server_error", "param": None, "code": None}}
#: A short schedule for tests: checks 0.1 s after opening, then at most 0.4 s apart.
QUICK = ProbeSchedule(first=0.1, cap=0.4)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Checked(FakeProvider):
    """A fake provider whose background check a test controls."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.up = True
        self.check_delay = 0.0
        self.checks: list[float] = []

    @hookimpl
    async def provider_available(self, provider: str, context: Any) -> Availability:
        self.checks.append(time.monotonic())
        if self.check_delay:
            await asyncio.sleep(self.check_delay)
        if self.up:
            return Availability(True)
        return Availability(False, "no responde", "", ErrorKind.UNREACHABLE)


def use_servers(monkeypatch: pytest.MonkeyPatch, primary: FakeProviderServer, fallback: FakeProviderServer, **extra: str) -> None:
    env = two_server_env("openai", "ollama", primary.url, fallback.url, LLM_RETRY_BASE_DELAY="0.02", **extra)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def real_manager(schedule: ProbeSchedule | None = QUICK) -> LLMManager:
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    if schedule is not None:
        manager.prober.schedule = schedule
    return manager


# -- the breaker and the schedule, by hand ------------------------------


def test_a_passed_check_lets_one_request_try_and_one_failure_reopens() -> None:
    clock = Clock()
    circuit = CircuitBreaker(threshold=3, cooldown=30, max_cooldown=100, clock=clock)
    for _ in range(3):
        circuit.failure("503")
    assert circuit.state is CircuitState.OPEN and circuit.reason == "503"
    clock.now = 2
    assert circuit.vouch() and circuit.state is CircuitState.HALF_OPEN and circuit.retry_in() == 0
    assert not circuit.vouch()  # already vouched: nothing changes
    assert circuit.allow() and not circuit.allow()  # one request tries it, the others keep away
    assert circuit.failure("still 503")  # one failure is enough: open again, for longer
    assert circuit.state is CircuitState.OPEN and circuit.cooldown == 60 and not circuit.vouched
    clock.now = 3
    assert circuit.vouch() and circuit.allow() and circuit.success()
    assert circuit.state is CircuitState.CLOSED and circuit.cooldown == 30 and circuit.outage_started is None


def test_a_failed_check_restarts_the_cooldown_and_the_next_check_is_the_next_try() -> None:
    clock = Clock()
    circuit = CircuitBreaker(threshold=1, cooldown=30, clock=clock)
    circuit.failure()
    circuit.next_check_at = 2.0
    assert circuit.retry_in() == 2.0
    clock.now = 29
    circuit.check_failed("refused")
    circuit.next_check_at = 33.0
    clock.now = 31  # past the first cooldown: without the check it would be half-open by now
    assert circuit.state is CircuitState.OPEN and circuit.retry_in() == pytest.approx(2.0)
    assert circuit.reason == "refused"
    circuit.next_check_at = None  # nobody checks any more: the plain cooldown, from the last evidence
    assert circuit.retry_in() == pytest.approx(28.0)
    clock.now = 59
    assert circuit.state is CircuitState.HALF_OPEN


def test_skips_are_summed_up_once_per_period() -> None:
    clock = Clock()
    circuit = CircuitBreaker(threshold=1, clock=clock)
    summaries = []
    for step in range(100):
        clock.now = step * 0.5  # a skip every half second for 50 s
        summaries.append(circuit.note_skip(every=30))
    given = [s for s in summaries if s is not None]
    assert given == [(61, 30.0)]
    assert circuit.take_skips() == (39, pytest.approx(19.0)) and circuit.take_skips() is None


def test_the_schedule_backs_off_within_its_cap_and_the_cooldown() -> None:
    schedule = ProbeSchedule()
    no_jitter = [schedule.delay(n, 30, rng=lambda: 0.0) for n in range(6)]
    assert no_jitter == [1, 2, 4, 4, 4, 4]
    assert schedule.delay(3, 30, rng=lambda: 0.999) == pytest.approx(3.001)  # jitter only shortens
    assert schedule.delay(0, 0.3, rng=lambda: 0.0) == 0.3  # never further apart than the cooldown
    assert schedule.delay(10_000, 30, rng=lambda: 0.0) == 4  # no overflow however long it lasts


def test_a_board_without_a_listener_keeps_the_plain_cooldown() -> None:
    board = BreakerBoard(lambda: CircuitBreaker(threshold=1, cooldown=5))
    circuit = board.get("acme", "m")
    circuit.failure()
    board.opened("acme", "m", circuit)  # nobody listens: nothing happens
    assert circuit.next_check_at is None and 4 < circuit.retry_in() <= 5


# -- point 4: queued requests look at the circuit again ------------------


async def test_a_burst_against_a_failing_primary_stops_at_its_first_wave(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """200 calls at once, the primary answers 503 after 0.5 s: only the requests already sent reach it.

    Before this, the 168 calls queued for a connection slot were all sent
    after their wait, in seven waves of 32 (3.7 s, p50 2.1 s).
    """
    use_servers(monkeypatch, provider_server, fallback_server)
    provider_server.fault("chat", {"type": "http", "status": 503, "body": OVERLOADED, "seconds": 0.5, "always": True})
    async with real_manager(schedule=None) as manager:

        async def one(index: int) -> tuple[float, str]:
            started = time.monotonic()
            result = await manager.complete(f"pregunta {index}")
            return time.monotonic() - started, result.provider

        started = time.monotonic()
        outcomes = await asyncio.gather(*(one(i) for i in range(200)))
        wall = time.monotonic() - started
        stats = manager.stats()
    sent = len(provider_server.requests("chat"))
    p50 = statistics.median(seconds for seconds, _ in outcomes)
    print(f"burst: {sent} requests reached the primary, wall {wall:.2f}s, p50 {p50:.2f}s")
    assert {provider for _, provider in outcomes} == {"ollama"}
    assert MAX_CONNECTIONS <= sent <= 2 * MAX_CONNECTIONS
    assert stats["openai"].requests == sent  # a call skipped after its wait is not a request
    assert stats["openai"].skipped >= 200 - sent
    assert wall < 2.5 and p50 < 1.5  # 1.1 s and 0.75 s here: the 0.5 s wave, then 200 answers from the fallback


# -- point 3: background checks ---------------------------------------


async def test_a_recovered_primary_gets_traffic_back_and_a_dead_one_costs_nothing(
    monkeypatch: pytest.MonkeyPatch,
    provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Down (every route 503) for 2 s, then healthy: no request tries it meanwhile; it answers again within the cap."""
    use_servers(monkeypatch, provider_server, fallback_server)
    recovers_at = time.time() + 2.0
    provider_server.fault("any", {"type": "http", "status": 503, "body": OVERLOADED, "always": True, "until": recovers_at})
    served: list[tuple[float, str]] = []
    async with real_manager() as manager:
        while time.time() < recovers_at + 1.0:
            result = await manager.complete("hola")
            served.append((time.time(), result.provider))
            await asyncio.sleep(0.01)
    chat_hits = [r["at"] for r in provider_server.requests("chat")]
    checks = [r["at"] for r in provider_server.requests("models")]
    assert len([at for at in chat_hits if at < recovers_at]) == 3  # the three that opened the circuit, no more
    assert 2 <= len([at for at in checks if at < recovers_at]) <= 2.0 / (0.75 * QUICK.cap) + 3
    back = next(at for at, provider in served if provider == "openai")
    assert back - recovers_at <= QUICK.cap + 0.5  # the next check, then the next call (a margin for a busy machine)
    assert {provider for at, provider in served if at > back} == {"openai"}
    err = capsys.readouterr().err
    assert err.count("sigue sin responder a la comprobación en segundo plano") == 1  # the first failed check; the rest at debug
    assert err.count("responde de nuevo a la comprobación") == 1
    assert err.count("Circuito cerrado para 'openai' (gpt-4o-mini): vuelve a responder") == 1


async def test_at_the_default_schedule_recovery_is_noticed_within_five_seconds(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """No tuning at all: 503 on every route for 2.5 s; the circuit opens (cooldown 30 s) and traffic is back within 5 s."""
    use_servers(monkeypatch, provider_server, fallback_server)
    recovers_at = time.time() + 2.5
    provider_server.fault("any", {"type": "http", "status": 503, "body": OVERLOADED, "always": True, "until": recovers_at})
    back = None
    async with real_manager(schedule=None) as manager:
        while time.time() < recovers_at + 6.0:
            result = await manager.complete("hola")
            if result.provider == "openai" and time.time() > recovers_at:
                back = time.time()
                break
            await asyncio.sleep(0.05)
    assert back is not None and back - recovers_at <= 5.0, back


async def test_a_check_that_passes_while_chat_fails_lets_one_request_try_never_a_burst(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """The model list answers, chat does not: each passed check costs one request, even with 20 callers at once."""
    use_servers(monkeypatch, provider_server, fallback_server)
    provider_server.fault("chat", {"type": "http", "status": 503, "body": OVERLOADED, "always": True})
    stop_at = time.monotonic() + 1.5

    async def caller(manager: LLMManager) -> int:
        calls = 0
        while time.monotonic() < stop_at:
            await manager.complete("hola")
            calls += 1
            await asyncio.sleep(0.01)
        return calls

    async with real_manager() as manager:
        calls = sum(await asyncio.gather(*(caller(manager) for _ in range(20))))
    hits = sorted(r["at"] for r in provider_server.requests("chat"))
    checks = provider_server.requests("models")
    tries = [at for at in hits if at > hits[0] + 0.05]  # after the first wave, sent by 20 callers at once, opened it
    assert calls > 200 and checks and tries
    assert len(tries) <= len(checks)  # at most one request per passed check
    assert all(b - a > 0.05 for a, b in zip(tries, tries[1:], strict=False))  # one at a time, never a burst


async def test_a_hanging_check_never_delays_a_call(
    monkeypatch: pytest.MonkeyPatch, provider_server: FakeProviderServer, fallback_server: FakeProviderServer
) -> None:
    """Checks hang (the model list never answers); calls skip the primary at once and closing does not wait for them."""
    use_servers(monkeypatch, provider_server, fallback_server, OPENAI_TIMEOUT="1")
    provider_server.fault("chat", {"type": "http", "status": 503, "body": OVERLOADED, "always": True})
    provider_server.fault("models", {"type": "hang", "always": True})
    manager = real_manager(ProbeSchedule(first=0.05, cap=0.05))
    await manager.complete("abre el circuito")
    durations = []
    stop_at = time.monotonic() + 1.5
    while time.monotonic() < stop_at:
        started = time.monotonic()
        result = await manager.complete("hola")
        durations.append(time.monotonic() - started)
        assert result.provider == "ollama"
        await asyncio.sleep(0.01)
    assert len(provider_server.requests("chat")) == 3  # no request tried it: no check passed
    assert len(provider_server.requests("models")) >= 2  # one hung and was abandoned after OPENAI_TIMEOUT, then more
    assert max(durations) < 0.5, max(durations)  # never the hung check's second
    assert manager.prober.active == 1  # one check, pending or hung
    started = time.monotonic()
    await manager.aclose()
    assert time.monotonic() - started < 0.5
    assert manager.prober.active == 0
    await asyncio.sleep(0)
    assert [task for task in asyncio.all_tasks() if task.get_name().startswith("patcode-circuit-check")] == []


async def test_no_check_and_no_task_while_every_circuit_is_closed() -> None:
    alpha = Checked("alpha")
    manager = manager_with(alpha)
    tasks_before = len(asyncio.all_tasks())
    for _ in range(5):
        await manager.complete("hola")
    assert manager.prober.active == 0 and alpha.checks == []
    assert len(asyncio.all_tasks()) == tasks_before
    await manager.aclose()


async def test_checks_stop_after_their_window_then_the_cooldown_rules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.4")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = Checked("alpha", priority=1), FakeProvider("beta", priority=2)
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    alpha.up = False
    manager = manager_with(alpha, beta)
    manager.prober.schedule = ProbeSchedule(first=0.05, cap=0.05, window=0.5)
    opened_at = time.monotonic()
    await manager.complete("hola")
    while time.monotonic() < opened_at + 0.7:  # checks fail for 0.5 s, each restarting the cooldown
        assert (await manager.complete("hola")).provider == "beta"
        await asyncio.sleep(0.01)
    assert len(alpha.calls) == 1 and 5 <= len(alpha.checks) <= 0.5 / (0.75 * 0.05) + 1
    assert manager.prober.active == 0 and manager.breakers.get("alpha", "m1").next_check_at is None
    assert "lleva 0 min sin responder: deja de comprobarse en segundo plano" in capsys.readouterr().err
    alpha.behaviour = lambda request: ProviderReply("alpha is back", model=request.model)
    await asyncio.sleep(0.4)  # with no checks, a request tries it once the cooldown since the last check is over
    assert (await manager.complete("hola")).provider == "alpha"
    await manager.aclose()


async def test_a_check_in_flight_when_a_request_closes_the_circuit_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.1")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = Checked("alpha", priority=1), FakeProvider("beta", priority=2)
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    alpha.up, alpha.check_delay = False, 0.3
    manager = manager_with(alpha, beta)
    manager.prober.schedule = ProbeSchedule(first=0.05, cap=0.05)
    await manager.complete("hola")
    await asyncio.sleep(0.15)  # a check is in flight; the cooldown is over: a request tries alpha
    alpha.behaviour = lambda request: ProviderReply("ok", model=request.model)
    assert (await manager.complete("hola")).provider == "alpha"
    await asyncio.sleep(0.3)  # the check comes back "down": too late, the circuit stays closed
    circuit = manager.breakers.get("alpha", "m1")
    assert circuit.state is CircuitState.CLOSED and circuit.next_check_at is None and manager.prober.active == 0
    await manager.aclose()


# -- the log: a few lines per change of state, not per call ---------------


async def test_the_log_has_a_few_lines_per_state_change_not_per_call(
    monkeypatch: pytest.MonkeyPatch,
    provider_server: FakeProviderServer,
    fallback_server: FakeProviderServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Hundreds of calls past an open circuit: the opening, the first failed check, and a summary per period."""
    monkeypatch.setattr(Router, "skip_summary_every", 0.25)
    use_servers(monkeypatch, provider_server, fallback_server)
    provider_server.fault("any", {"type": "http", "status": 503, "body": OVERLOADED, "always": True})
    calls = 1
    async with real_manager() as manager:
        await manager.complete("abre el circuito")  # three failures (two retries), the opening, the fallback
        stop_at = time.monotonic() + 1.2
        while time.monotonic() < stop_at:
            await asyncio.gather(*(manager.complete("hola") for _ in range(10)))
            calls += 10
            await asyncio.sleep(0.01)
        skipped = manager.stats()["openai"].skipped
    lines = capsys.readouterr().err.splitlines()
    summaries = [line for line in lines if "llamadas omitidas en los últimos" in line]
    print(f"{calls} calls, {skipped} skips, {len(lines)} log lines:", *lines, sep="\n")
    assert calls >= 200 and skipped == calls - 1
    assert 2 <= len(summaries) <= 1.2 / 0.25 + 1
    assert sum(int(line.split()[1]) for line in summaries) <= skipped
    assert all(line.endswith("circuito abierto de 'openai' (gpt-4o-mini)") for line in summaries)
    others = [line for line in lines if line not in summaries]
    # 3 failures, 2 retries, the opening, "trying ollama" and "ollama answered", the first failed check.
    assert len(others) <= 10, "\n".join(others)
    assert sum("Circuito abierto para 'openai'" in line for line in others) == 1
    assert not any("omitido" in line for line in others)


async def test_watchers_still_hear_every_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = FakeProvider("alpha", priority=1), FakeProvider("beta", priority=2)
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    manager = manager_with(alpha, beta)
    heard: list[str] = []
    manager.watch(lambda event, fields: heard.append(event))
    for _ in range(3):
        await manager.complete("hola")
    assert heard.count("provider_skipped") == 2 and heard.count("fallback_trying") == 3
    await manager.aclose()


def test_between_sync_calls_no_check_runs_and_the_plain_cooldown_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """``SyncLLMManager`` runs its loop only during a call: between calls the cooldown decides, as before."""
    from patcode_core.manager import SyncLLMManager

    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.2")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = Checked("alpha", priority=1), FakeProvider("beta", priority=2)
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    alpha.up = False
    with SyncLLMManager(manager_with(alpha, beta)) as manager:
        assert manager.complete("hola").provider == "beta"
        time.sleep(0.3)  # no loop runs: no check
        assert alpha.checks == []
        alpha.behaviour = lambda request: ProviderReply("alpha is back", model=request.model)
        assert manager.complete("hola").provider == "alpha"  # the cooldown is over: this request tries it
        assert manager.manager.breakers.get("alpha", "m1").state is CircuitState.CLOSED
    assert manager.manager.prober.active == 0


# -- the process: nothing left behind -----------------------------------

SCRIPT = """
import asyncio, sys, time
sys.path.insert(0, {tests!r})
from helpers import FakeProvider, failing, manager_with
from patcode_core import hookimpl
from patcode_core.routing.circuit_probes import ProbeSchedule
from patcode_core.errors import ErrorKind


class Stuck(FakeProvider):
    @hookimpl
    def provider_available(self, provider, context):  # a plain hook that never returns: run in a daemon thread
        time.sleep(60)


async def main():
    alpha, beta = Stuck("alpha", priority=1), FakeProvider("beta", priority=2)
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    manager = manager_with(alpha, beta)
    manager.prober.schedule = ProbeSchedule(first=0.01, cap=0.01)
    await manager.complete("hola")
    await asyncio.sleep(0.2)  # the check is in flight, stuck
    assert manager.prober.active == 1
    print("returning without aclose", flush=True)

asyncio.run(main())
"""


def test_a_manager_never_closed_leaves_no_pending_task_and_does_not_keep_the_process(tmp_path: Path) -> None:
    script = tmp_path / "never_closed.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(Path(__file__).parent))), encoding="utf-8")
    env = {"PATCODE_LANG": "es", "PATCODE_HOME": str(tmp_path), "LLM_BREAKER_THRESHOLD": "1", "LLM_MAX_RETRIES": "0"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "dev", str(script)], capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path
    )
    assert time.monotonic() - started < 10
    assert done.returncode == 0, done.stderr
    assert "returning without aclose" in done.stdout
    assert "Task was destroyed" not in done.stderr and "never awaited" not in done.stderr, done.stderr
