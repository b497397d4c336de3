"""The manager: routing, fallback per error class, logs, stats, switch, agent, sync facade."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers import FakeProvider, failing, host_with, manager_with

from patcode_core.agent import PatAgent
from patcode_core.errors import POLICY, AllProvidersFailedError, ErrorKind, PatCodeError, ProviderError
from patcode_core.manager import LLMManager, SyncLLMManager
from patcode_core.types import Message, ProviderReply


def _pair() -> tuple[FakeProvider, FakeProvider]:
    return FakeProvider("alpha", priority=1), FakeProvider("beta", priority=2)


async def test_result_names_provider_model_usage_and_latency() -> None:
    alpha, beta = _pair()
    result = await manager_with(alpha, beta).complete("hola")
    assert (result.provider, result.model, result.text) == ("alpha", "m1", "alpha answers")
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens == 3 and result.usage.total_tokens == 7
    assert result.latency > 0 and result.fallback_from is None
    assert alpha.calls[0].messages == (Message("user", "hola"),)
    assert alpha.calls[0].temperature == 0.7 and alpha.calls[0].max_tokens == 1024
    assert beta.calls == []


async def test_fallback_logs_the_documented_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.TIMEOUT, "alpha", "Connection timeout")
    result = await manager_with(alpha, beta).complete("hola")
    assert result.provider == "beta" and result.fallback_from == "alpha"
    assert capsys.readouterr().err.splitlines() == [
        "[WARNING] Provider 'alpha' falló: Connection timeout",
        "[INFO] Intentando fallback a 'beta'...",
        "✓ Fallback exitoso a 'beta'",
    ]


async def test_english_catalogue_renders_the_same_sequence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATCODE_LANG", "en")
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.TIMEOUT, "alpha", "Connection timeout")
    await manager_with(alpha, beta).complete("hello")
    assert capsys.readouterr().err.splitlines() == [
        "[WARNING] Provider 'alpha' failed: Connection timeout",
        "[INFO] Trying fallback to 'beta'...",
        "✓ Fallback to 'beta' succeeded",
    ]


async def test_json_log_format_carries_fields(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.setenv("LLM_RETRY_BASE_DELAY", "0.01")
    monkeypatch.setenv("PATCODE_LOG_FORMAT", "json")
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha", "error del servidor (HTTP 503)")
    await manager_with(alpha, beta).complete("hola")
    first = json.loads(capsys.readouterr().err.splitlines()[0])
    assert first["event"] == "provider_failed" and first["provider"] == "alpha" and first["kind"] == "server_error"
    assert first["message"] == "Provider 'alpha' falló: error del servidor (HTTP 503)"


@pytest.mark.parametrize("kind", list(ErrorKind))
async def test_fallback_table_row(kind: ErrorKind, monkeypatch: pytest.MonkeyPatch) -> None:
    """One test per row of the documented table: which errors fall back and which stop."""
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = _pair()
    alpha.behaviour = failing(kind, "alpha")
    manager = manager_with(alpha, beta)
    if POLICY[kind].fallback:
        result = await manager.complete("hola")
        assert result.provider == "beta"
        assert [f.kind for f in result.failures] == [kind]
    elif kind is ErrorKind.DEADLINE:
        # The deadline ends the whole call: the error lists what was tried.
        with pytest.raises(AllProvidersFailedError) as caught_all:
            await manager.complete("hola")
        assert [f.kind for f in caught_all.value.failures] == [kind] and beta.calls == []
    else:
        with pytest.raises(ProviderError) as caught:
            await manager.complete("hola")
        assert caught.value.kind is kind and beta.calls == []


def test_fallback_table_in_docs_matches_policy() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "errores.md").read_text(encoding="utf-8")
    for kind, policy in POLICY.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{kind.value}`")), None)
        assert row is not None, f"docs/errores.md lacks a row for {kind.value}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == ("sí" if policy.fallback else "no"), row
        assert cells[3] == ("sí" if policy.retryable else "no"), row
        assert cells[4] == ("sí" if policy.trips_breaker else "no"), row


async def test_fallback_off_raises_the_first_error_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_RETRY_BASE_DELAY", "0.01")
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.CONNECTION, "alpha", "No se pudo conectar")
    manager = manager_with(alpha, beta)
    manager.auto_fallback = False
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola")
    assert caught.value.provider == "alpha" and caught.value.kind is ErrorKind.CONNECTION
    assert beta.calls == []


async def test_fallback_setting_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_AUTO_FALLBACK", "false")
    monkeypatch.setenv("LLM_RETRY_BASE_DELAY", "0.01")
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    with pytest.raises(ProviderError):
        await manager_with(alpha, beta).complete("hola")


async def test_all_failed_lists_every_failure_with_its_cure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.AUTHENTICATION, "alpha", "clave rechazada")
    beta.behaviour = failing(ErrorKind.CONNECTION, "beta", "No se pudo conectar")
    with pytest.raises(AllProvidersFailedError) as caught:
        await manager_with(alpha, beta).complete("hola")
    text = str(caught.value)
    assert text.splitlines() == [
        "Todos los providers fallaron:",
        "  - alpha: clave rechazada. fix alpha",
        "  - beta: No se pudo conectar. fix beta",
    ]
    assert [f.provider for f in caught.value.failures] == ["alpha", "beta"]


async def test_unconfigured_provider_is_skipped_without_a_call(capsys: pytest.CaptureFixture[str]) -> None:
    keyed = FakeProvider("keyed", key_env="KEYED_API_KEY", priority=1)
    local = FakeProvider("local", priority=2)
    manager = manager_with(keyed, local)
    result = await manager.complete("hola")
    assert result.provider == "local" and keyed.calls == []
    assert result.failures[0].kind is ErrorKind.NOT_CONFIGURED
    assert "[INFO] Provider 'keyed' omitido: KEYED_API_KEY no está configurada" in capsys.readouterr().err
    assert manager.stats()["keyed"].requests == 0 and manager.stats()["keyed"].skipped == 1


async def test_fallback_order_with_models_and_unknown_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = _pair()
    alpha.behaviour = failing(ErrorKind.MODEL_NOT_FOUND, "alpha")
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "alpha, nosuch, beta/big-model:7b, alpha/other")
    manager = manager_with(alpha, beta)
    assert "LLM_FALLBACK_ORDER nombra 'nosuch', que no está instalado; se omite" in capsys.readouterr().err
    result = await manager.complete("hola")
    assert result.provider == "beta" and beta.calls[0].model == "big-model:7b"
    assert [call.model for call in alpha.calls] == ["m1"]


async def test_fallback_entry_may_retry_same_provider_with_another_model(monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = _pair()

    def only_other(request):  # type: ignore[no-untyped-def]
        if request.model != "other":
            raise ProviderError("alpha", ErrorKind.CONTEXT_LENGTH, "too long")
        return ProviderReply("ok from other", model="other")

    alpha.behaviour = only_other
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "alpha,alpha/other,beta")
    result = await manager_with(alpha, beta).complete("hola")
    assert (result.provider, result.model) == ("alpha", "other")


async def test_default_provider_from_settings_and_unknown_one(monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = _pair()
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "BETA")
    assert manager_with(alpha, beta).get_current_provider() == "beta"
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "gamma")
    with pytest.raises(PatCodeError) as caught:
        manager_with(*_pair())
    assert str(caught.value).startswith("LLM_DEFAULT_PROVIDER='gamma' no es un provider instalado. Instalados: alpha, beta")


async def test_switch_validates_names() -> None:
    manager = manager_with(*_pair())
    assert manager.switch("Beta") == "beta" and manager.get_current_provider() == "beta"
    assert (await manager.complete("hola")).provider == "beta"
    with pytest.raises(PatCodeError, match="'zeta' no es un provider instalado. Instalados: alpha, beta"):
        manager.switch("zeta")


async def test_plugin_bug_becomes_plugin_error_and_falls_back() -> None:
    alpha, beta = _pair()

    def crash(request):  # type: ignore[no-untyped-def]
        raise KeyError("choices")

    alpha.behaviour = crash
    result = await manager_with(alpha, beta).complete("hola")
    failure = result.failures[0]
    assert failure.kind is ErrorKind.PLUGIN_ERROR
    assert failure.message == "el plugin 'alpha' falló: KeyError: 'choices'"


async def test_wrong_reply_type_is_a_plugin_error() -> None:
    alpha, beta = _pair()
    alpha.behaviour = lambda request: "just text"  # type: ignore[assignment,return-value]
    result = await manager_with(alpha, beta).complete("hola")
    assert result.failures[0].kind is ErrorKind.PLUGIN_ERROR


async def test_synchronous_hook_runs_off_the_event_loop() -> None:
    from patcode_core import hookimpl

    loop_thread = threading.get_ident()
    seen: list[int] = []

    class SyncPlugin(FakeProvider):
        @hookimpl
        def provider_complete(self, provider, request, context):  # type: ignore[no-untyped-def,override]
            seen.append(threading.get_ident())
            return ProviderReply("sync answer", model=request.model)

    result = await manager_with(SyncPlugin("sync")).complete("hola")
    assert result.text == "sync answer" and seen and seen[0] != loop_thread


async def test_stats_are_exact_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = _pair()
    counter = {"n": 0}

    def every_third_fails(request):  # type: ignore[no-untyped-def]
        counter["n"] += 1
        if counter["n"] % 3 == 0:
            raise ProviderError("alpha", ErrorKind.SERVER_ERROR, "503")
        return ProviderReply("ok", model=request.model)

    alpha.behaviour = every_third_fails
    manager = manager_with(alpha, beta)
    results = await asyncio.gather(*(manager.complete(f"q{i}") for i in range(600)))
    stats = manager.stats()
    assert stats["alpha"].requests == 600
    assert stats["alpha"].failures == 200 and stats["alpha"].successes == 400
    assert stats["beta"].requests == stats["beta"].successes == 200
    assert sum(r.provider == "beta" for r in results) == 200
    assert stats["alpha"].success_rate == pytest.approx(400 / 6)
    assert stats["alpha"].mean_time > 0


def test_stats_recorder_is_exact_across_threads() -> None:
    from patcode_core.accounting.stats import StatsRecorder

    recorder = StatsRecorder()

    def work() -> None:
        for i in range(5000):
            recorder.record("p", i % 2 == 0, 0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures = recorder.snapshot()["p"]
    assert (figures.requests, figures.successes, figures.failures) == (40000, 20000, 20000)


async def test_secret_in_a_provider_message_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    keyed = FakeProvider("keyed", key_env="KEYED_API_KEY", priority=1)
    monkeypatch.setenv("KEYED_API_KEY", "topsecretvalue123")
    keyed.behaviour = failing(ErrorKind.AUTHENTICATION, "keyed", "bad key topsecretvalue123 given")
    manager = manager_with(keyed)
    with pytest.raises(AllProvidersFailedError) as caught:
        await manager.complete("hola")
    failure = caught.value.failures[0]
    for text in (str(caught.value), repr(caught.value), str(failure), repr(failure)):
        assert "topsecretvalue123" not in text
    assert failure.message == "bad key *** given"
    assert "topsecretvalue123" not in repr(manager.settings.llm)


async def test_message_lists_and_bad_messages() -> None:
    alpha = FakeProvider("alpha")
    manager = manager_with(alpha)
    await manager.complete([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert [m.role for m in alpha.calls[0].messages] == ["system", "user"]
    with pytest.raises(PatCodeError, match="mensaje inválido"):
        await manager.complete([{"role": "robot", "content": "x"}])
    with pytest.raises(PatCodeError, match="El prompt está vacío"):
        await manager.complete("   ")


async def test_providers_status_and_test() -> None:
    keyed = FakeProvider("keyed", key_env="KEYED_API_KEY", priority=1)
    local = FakeProvider("local", priority=2)
    manager = manager_with(keyed, local)
    rows = {row.name: row for row in await manager.providers_status()}
    assert rows["keyed"].available is False and rows["keyed"].kind is ErrorKind.NOT_CONFIGURED
    assert rows["keyed"].reason == "KEYED_API_KEY no está configurada" and rows["keyed"].current
    assert rows["local"].available is True
    result = await manager.test("local")
    assert result.provider == "local" and local.calls[0].max_tokens == 16
    with pytest.raises(ProviderError):
        await manager.test("keyed")  # no fallback in a test


async def test_agent_keeps_history_and_exposes_the_manager() -> None:
    alpha = FakeProvider("alpha")
    agent = PatAgent(manager_with(alpha))
    assert agent.llm_manager.get_current_provider() == "alpha"
    await agent.ask("primera")
    await agent.ask("segunda")
    assert [m.content for m in alpha.calls[1].messages] == ["primera", "alpha answers", "segunda"]
    agent.clear()
    await agent.ask("otra")
    assert len(alpha.calls[2].messages) == 1


def test_sync_facade() -> None:
    alpha, beta = _pair()
    with SyncLLMManager(manager_with(alpha, beta)) as facade:
        assert facade.complete("hola").provider == "alpha"
        assert facade.switch("beta") == "beta"
        assert facade.complete("hola").provider == "beta"
        assert facade.stats()["beta"].successes == 1
        assert [row.name for row in facade.providers_status()] == ["alpha", "beta"]


async def test_sync_facade_refuses_a_running_loop() -> None:
    facade = SyncLLMManager(manager_with(FakeProvider("alpha")))
    with pytest.raises(PatCodeError, match="event loop"):
        facade.complete("hola")


async def test_no_providers_is_a_clear_error() -> None:
    manager = LLMManager(host=host_with(), env_file=None)
    with pytest.raises(PatCodeError, match="No hay ningún provider instalado"):
        await manager.complete("hola")
