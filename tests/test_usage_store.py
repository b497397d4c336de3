"""The usage store, costs and the response cache: schema, concurrency, damage, privacy, prices, cache rules."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FakeProvider, failing, manager_with

from patcode_core.accounting.history import parse_since, summarize
from patcode_core.accounting.prices import Price, PriceBook, parse_price_overrides
from patcode_core.accounting.store import MIGRATIONS, SCHEMA_VERSION, Attempt, CachedAnswer, StoreUnavailable, UsageStore
from patcode_core.accounting.usage import cache_key, normalized_text
from patcode_core.errors import ConfigError, ErrorKind, ProviderError
from patcode_core.types import CompletionRequest, Message, ProviderReply, TextDelta, Usage


def request(text: str, temperature: float = 0.7, max_tokens: int = 64, model: str = "m1") -> CompletionRequest:
    return CompletionRequest((Message("user", text),), model, temperature, max_tokens)


# -- schema ------------------------------------------------------------


def test_an_old_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "patcode.db"
    old = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO attempts (at, provider, model, outcome, latency, input_tokens, output_tokens) "
                "VALUES (1700000000, 'alpha', 'm1', 'success', 0.5, 10, 20)")
    old.commit()
    old.close()
    store = UsageStore(path)
    store.record(Attempt(time.time(), "alpha", "m1", "success", latency=0.25, cost=0.001, ttft=0.1))
    store.flush()
    assert store.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    rows = store.query("SELECT provider, latency, cost, cached FROM attempts ORDER BY at")
    assert rows == [("alpha", 0.5, None, 0), ("alpha", 0.25, 0.001, 0)]
    assert store.query("SELECT COUNT(*) FROM cache") == [(0,)]
    store.close()


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "patcode.db"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(StoreUnavailable, match="newer than this PatCode"):
        UsageStore(path)


WRITER = """
import sys, time
from pathlib import Path
from patcode_core.accounting.store import Attempt, UsageStore
store = UsageStore(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    store.record(Attempt(time.time(), sys.argv[3], "m1", "success", latency=0.01 * i))
store.close()
"""


def test_parallel_processes_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "patcode.db"
    UsageStore(path).close()  # create the schema first, as the first run would
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), "500", f"p{index}"], stderr=subprocess.PIPE, text=True)
        for index in range(4)
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors
    store = UsageStore(path)
    assert store.query("SELECT provider, COUNT(*) FROM attempts GROUP BY provider ORDER BY provider") == [
        (f"p{index}", 500) for index in range(4)
    ]
    assert store.query("PRAGMA journal_mode") == [("wal",)]
    store.close()


# -- damage ------------------------------------------------------------


async def test_a_corrupt_database_warns_and_patcode_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "patcode.db").write_bytes(b"this is not a database, just damaged bytes" * 100)
    monkeypatch.setenv("PATCODE_HOME", str(home))
    manager = manager_with(FakeProvider("alpha"))
    first = await manager.complete("hola")
    second = await manager.complete("otra")
    assert first.text == second.text == "alpha answers"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "historial" in line]
    assert len(warnings) == 1 and warnings[0].startswith("[WARNING] No se puede usar la base de datos de historial (")
    assert "el historial queda desactivado en esta sesión. PatCode sigue respondiendo" in warnings[0]
    assert not manager.usage.persistent
    assert [usage.requests for usage in manager.usage_summary()] == [2]  # kept in memory for this session
    await manager.aclose()


async def test_store_off_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("PATCODE_HOME", str(home))
    monkeypatch.setenv("LLM_STATS_STORE", "off")
    manager = manager_with(FakeProvider("alpha"))
    await manager.complete("hola")
    assert manager.usage_summary()[0].successes == 1
    await manager.aclose()
    assert not home.exists()


# -- privacy -----------------------------------------------------------


@pytest.mark.parametrize("log_content", [False, True])
async def test_content_only_when_asked_and_keys_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_content: bool
) -> None:
    secret = "sk-secret-never-stored-0123456789"
    monkeypatch.setenv("KEYED_API_KEY", secret)
    monkeypatch.setenv("LLM_LOG_CONTENT", str(log_content).lower())
    manager = manager_with(FakeProvider("keyed", key_env="KEYED_API_KEY"))
    await manager.complete(f"mi prompt (no es la clave {secret[:3]})")
    await manager.aclose()
    raw = (tmp_path / "patcode-home" / "patcode.db").read_bytes()
    for sidecar in (tmp_path / "patcode-home").glob("patcode.db-*"):
        raw += sidecar.read_bytes()
    assert secret.encode() not in raw
    store = UsageStore(tmp_path / "patcode-home" / "patcode.db")
    [(prompt, answer)] = store.query("SELECT prompt, answer FROM attempts")
    assert (prompt, answer) == (("mi prompt (no es la clave sk-)", "keyed answers") if log_content else (None, None))
    store.close()


# -- prices ------------------------------------------------------------


def test_prices_published_overridden_and_unknown() -> None:
    book = PriceBook(
        {"acme": {"big": Price(1.0, 2.0, "2025-08-01")}, "local": {"*": Price(0.0, 0.0, "local")}},
        parse_price_overrides("acme/small=0.5:1, acme/big=3:4"),
    )
    usage = Usage(1_000_000, 500_000)
    assert book.cost("acme", "big", usage) == pytest.approx(3 + 2)  # the override wins
    assert book.cost("acme", "small", usage) == pytest.approx(0.5 + 0.5)
    assert book.cost("local", "anything", usage) == 0.0
    assert book.cost("acme", "mystery", usage) is None  # unknown, never 0
    assert book.cost("acme", "big", Usage(None, 10)) is None  # tokens not counted


def test_bad_price_setting_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PRICES", "acme/big=cheap")
    with pytest.raises(ConfigError) as caught:
        manager_with(FakeProvider("alpha"))
    assert "LLM_PRICES='acme/big=cheap' no es válido: la entrada 'acme/big=cheap' no tiene la forma provider/modelo=entrada:salida" in str(caught.value)


async def test_cost_in_results_and_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    from patcode_core.terminal.render import stats_block

    monkeypatch.setenv("LLM_PRICES", "priced/m1=2:4")
    priced, unpriced = FakeProvider("priced", priority=1), FakeProvider("unpriced", priority=2)
    manager = manager_with(priced, unpriced)
    result = await manager.complete("hola")
    assert result.cost == pytest.approx((3 * 2 + 4 * 4) / 1_000_000)  # Usage(3, 4) from the fake
    other = await manager.complete("hola", provider="unpriced", fallback=False)
    assert other.cost is None
    block = stats_block(manager)
    assert "  Coste: $0.0000 (m1 $0.0000)" in block.split("priced:")[1]
    assert "  Coste: desconocido (m1 desconocido)" in block.split("unpriced:")[1]
    await manager.aclose()


# -- cache -------------------------------------------------------------


def test_cache_keys_normalise_equivalent_requests() -> None:
    base = cache_key("acme", "m1", request("def f():\n    return 1"))
    assert cache_key("acme", "m1", request("  def f():   \r\n    return 1  \n")) == base
    assert cache_key("acme", "m1", request("def f():\n    return 1", temperature=0.70)) == base
    assert cache_key("acme", "m1", request("def f():\n    return 2")) != base
    assert cache_key("acme", "m1", request("def f():\n    return 1", temperature=0.2)) != base
    assert cache_key("acme", "m1", request("def f():\n    return 1", max_tokens=65)) != base
    assert cache_key("acme", "m2", request("def f():\n    return 1", model="m2")) != base
    assert cache_key("other", "m1", request("def f():\n    return 1")) != base
    assert normalized_text("a  \r\nb\r") == "a\nb"


def test_cache_entries_expire(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "patcode.db")
    store.put_cached("k", "acme", "m1", 60, CachedAnswer("hola", "stop", 1, 2, "m1"))
    store.flush()
    assert store.cached("k") == CachedAnswer("hola", "stop", 1, 2, "m1")
    assert store.cached("k", now=time.time() + 61) is None
    store.close()
    reopened = UsageStore(tmp_path / "patcode.db")  # from the file, not the memory of the writer
    assert reopened.cached("k") is not None and reopened.cached("k", now=time.time() + 61) is None
    reopened.close()


async def test_cache_hits_cost_nothing_and_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_CACHE", "true")
    alpha = FakeProvider("alpha")
    manager = manager_with(alpha)
    first = await manager.complete("¿qué es un closure?")
    again = await manager.complete("  ¿qué es un closure?  ")
    assert len(alpha.calls) == 1 and not first.cached
    assert again.cached and again.cost == 0.0 and again.text == first.text and again.attempts == 0
    events = [event async for event in manager.stream("¿qué es un closure?")]
    assert events[-1].cached and "".join(e.text for e in events if isinstance(e, TextDelta)) == first.text
    assert len(alpha.calls) == 1
    assert manager.stats()["alpha"].cache_hits == 2
    [usage] = manager.usage_summary()
    assert (usage.requests, usage.cache_hits) == (1, 2)
    await manager.aclose()


@pytest.mark.parametrize("why", ["error", "truncated", "opted_out", "cache_off"])
async def test_what_is_never_cached(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    monkeypatch.setenv("LLM_CACHE", "false" if why == "cache_off" else "true")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    if why == "opted_out":
        monkeypatch.setenv("ALPHA_CACHE", "false")
    alpha = FakeProvider("alpha")
    if why == "error":
        alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    if why == "truncated":
        alpha.behaviour = lambda r: ProviderReply("cortada a la mitad", model=r.model, finish_reason="length", usage=Usage(1, 2))
    manager = manager_with(alpha)
    for _ in range(2):
        if why == "error":
            with pytest.raises(ProviderError):
                await manager.complete("hola", fallback=False)
        else:
            await manager.complete("hola", fallback=False)
    assert len(alpha.calls) == 2  # the second call went to the provider again
    manager.usage.store.flush()
    assert manager.usage.store.query("SELECT COUNT(*) FROM cache") == [(0,)]
    await manager.aclose()


def test_since_accepts_durations_and_dates() -> None:
    now = 1_800_000_000.0
    assert parse_since("1h", now) == now - 3600
    assert parse_since("30m", now) == now - 1800
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("2w", now) == now - 14 * 86400
    assert parse_since("2026-11-01", now) == pytest.approx(__import__("datetime").datetime(2026, 11, 1).timestamp())
    with pytest.raises(ValueError):
        parse_since("ayer", now)


def test_summary_filters_and_percentiles(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "patcode.db")
    now = time.time()
    for index in range(1, 101):
        store.record(Attempt(now - 60, "fast", "m1", "success", latency=index / 100, ttft=0.05, input_tokens=1, output_tokens=2, cost=0.5))
    store.record(Attempt(now - 10 * 86400, "fast", "m1", "failure", error_kind="timeout", latency=30))
    store.record(Attempt(now - 60, "slow", "m9", "success", latency=2.0, fallback_from="fast"))
    all_time = {usage.provider: usage for usage in summarize(store)}
    recent = {usage.provider: usage for usage in summarize(store, since=now - 86400)}
    assert (all_time["fast"].requests, all_time["fast"].failures) == (101, 1)
    assert (recent["fast"].requests, recent["fast"].failures) == (100, 0)
    assert recent["fast"].p50_latency == pytest.approx(0.505, abs=0.01)
    assert recent["fast"].p95_latency == pytest.approx(0.95, abs=0.011)
    assert recent["fast"].cost == pytest.approx(50) and recent["fast"].output_tokens == 200
    assert recent["fast"].fallbacks_out == 1 and recent["slow"].fallbacks_in == 1
    assert recent["slow"].cost is None and recent["slow"].unpriced_answers == 1
    assert [usage.provider for usage in summarize(store, provider="slow")] == ["slow"]
    store.close()


async def test_turns_are_recorded_with_their_conversation() -> None:
    from patcode_core.agent import PatAgent

    agent = PatAgent(manager_with(FakeProvider("alpha")))
    await agent.ask("uno")
    await agent.ask("dos")
    first = agent.conversation
    agent.clear()
    await agent.ask("tres")
    store = agent.llm_manager.usage.store
    store.flush()
    rows = [row[0] for row in store.query("SELECT conversation FROM attempts ORDER BY id")]
    assert rows == [first, first, agent.conversation] and first != agent.conversation
    await agent.llm_manager.aclose()


async def test_a_broken_stream_can_restart_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from collections.abc import AsyncIterator

    from patcode_core import hookimpl
    from patcode_core.types import StreamChunk, StreamRestarted

    class Breaks(FakeProvider):
        @hookimpl
        async def provider_stream(self, provider: str, request: CompletionRequest, context: object) -> AsyncIterator[StreamChunk]:
            self.calls.append(request)
            yield StreamChunk(text="medio ")  # then the stream ends with no end marker

    monkeypatch.setenv("LLM_CACHE", "true")
    alpha, beta = Breaks("alpha", priority=1), FakeProvider("beta", priority=2)
    manager = manager_with(alpha, beta)
    await manager.complete("hola", provider="beta", fallback=False)  # beta's answer is now cached
    events = [event async for event in manager.stream("hola")]
    kinds = [type(event).__name__ for event in events]
    assert kinds[:3] == ["StreamStarted", "TextDelta", "StreamRestarted"]
    restart = next(event for event in events if isinstance(event, StreamRestarted))
    assert (restart.from_provider, restart.to_provider, restart.discarded) == ("alpha", "beta", "medio ")
    assert events[-1].cached and events[-1].text == "beta answers" and events[-1].restarts == (restart,)
    assert len(beta.calls) == 1
    await manager.aclose()


# -- unknown counts, free models, success rate (issue 10) -----------------------


def test_unknown_token_counts_stay_unknown_in_the_figures(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "patcode.db")
    now = time.time()
    store.record(Attempt(now, "alpha", "m1", "success", latency=0.2, input_tokens=19, output_tokens=10, cost=0.5))
    store.record(Attempt(now, "alpha", "m1", "success", latency=0.2, cost=None))  # a stream that did not count
    store.record(Attempt(now, "alpha", "m1", "success", latency=0.0, input_tokens=19, output_tokens=10, cost=0.0, cached=True))
    store.record(Attempt(now, "alpha", "m1", "cancelled", latency=0.1))
    store.record(Attempt(now, "beta", "m2", "success", latency=0.3))
    store.record(Attempt(now, "gamma", "m3", "skipped", error_kind="not_configured"))
    figures = {usage.provider: usage for usage in summarize(store)}
    alpha, beta, gamma = figures["alpha"], figures["beta"], figures["gamma"]
    # The hit's 19/10 were not spent; the uncounted answer is counted apart, never as 0.
    assert (alpha.input_tokens, alpha.output_tokens, alpha.uncounted_answers) == (19, 10, 1)
    assert (beta.input_tokens, beta.output_tokens, beta.uncounted_answers) == (None, None, 1)
    assert (gamma.input_tokens, gamma.output_tokens, gamma.uncounted_answers) == (0, 0, 0)
    # One answer of unknown cost makes the model's figure unknown too; the hit's 0 does not hide it.
    assert alpha.unpriced_answers == 1 and alpha.cost_by_model == {"m1": None}
    # A stopped request is no verdict: 2 successes, 0 failures, 1 stopped is 100 %; nothing judged is no rate.
    assert (alpha.requests, alpha.successes, alpha.cancelled, alpha.success_rate) == (3, 2, 1, 100.0)
    assert gamma.success_rate is None and gamma.as_dict()["success_rate"] is None
    store.close()


def test_a_free_model_costs_nothing_even_uncounted() -> None:
    book = PriceBook({"local": {"*": Price(0, 0)}, "acme": {"big": Price(3, 4)}})
    assert book.cost("local", "smollm2", Usage()) == 0.0
    assert book.cost("acme", "big", Usage()) is None  # a priced model without counts stays unknown
