"""The manager's resilience rules with in-process fake providers: what is retried, skipped, waited, refused."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import FakeProvider, failing, manager_with

from patcode_core.errors import AllProvidersFailedError, ErrorKind, ProviderError
from patcode_core.routing.breaker import CircuitState
from patcode_core.terminal.render import providers_block, stats_block
from patcode_core.types import CompletionRequest, ProviderReply


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_RETRY_BASE_DELAY", "0.01")


def pair() -> tuple[FakeProvider, FakeProvider]:
    return FakeProvider("alpha", priority=1), FakeProvider("beta", priority=2)


def fails_then_answers(times: int, kind: ErrorKind, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    count = {"n": 0}

    def behaviour(request: CompletionRequest) -> ProviderReply:
        count["n"] += 1
        if count["n"] <= times:
            raise ProviderError("alpha", kind, f"fallo {count['n']}", "fix", retry_after=retry_after)
        return ProviderReply("alpha recovered", model=request.model)

    return behaviour


async def test_a_transient_failure_is_retried_on_the_same_provider(capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = pair()
    alpha.behaviour = fails_then_answers(2, ErrorKind.SERVER_ERROR)
    manager = manager_with(alpha, beta)
    result = await manager.complete("hola")
    assert (result.provider, result.text, result.attempts) == ("alpha", "alpha recovered", 3)
    assert len(alpha.calls) == 3 and beta.calls == []
    stats = manager.stats()["alpha"]
    assert (stats.requests, stats.successes, stats.failures, stats.retries) == (3, 1, 2, 2)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[WARNING] Provider 'alpha' falló: fallo 1"
    assert err[1].startswith("[INFO] Reintentando 'alpha' (intento 2 de 3) en ")


async def test_retries_are_bounded_then_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "1")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.CONNECTION, "alpha")
    manager = manager_with(alpha, beta)
    result = await manager.complete("hola")
    assert result.provider == "beta" and len(alpha.calls) == 2
    assert [(f.kind, f.attempt) for f in result.failures] == [(ErrorKind.CONNECTION, 1), (ErrorKind.CONNECTION, 2)]


@pytest.mark.parametrize(
    "kind", [ErrorKind.TIMEOUT, ErrorKind.UNREACHABLE, ErrorKind.AUTHENTICATION, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.CONTEXT_LENGTH]
)
async def test_not_retried_on_the_same_route(kind: ErrorKind) -> None:
    alpha, beta = pair()
    alpha.behaviour = failing(kind, "alpha")
    result = await manager_with(alpha, beta).complete("hola")
    assert result.provider == "beta" and len(alpha.calls) == 1


async def test_content_filter_is_returned_with_the_reason_and_never_retried() -> None:
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.CONTENT_FILTER, "alpha", "rechazado por el filtro de contenido: violence")
    with pytest.raises(ProviderError) as caught:
        await manager_with(alpha, beta).complete("hola")
    assert caught.value.kind is ErrorKind.CONTENT_FILTER and "violence" in caught.value.message
    assert len(alpha.calls) == 1 and beta.calls == []


async def test_context_length_falls_back_to_another_model(monkeypatch: pytest.MonkeyPatch) -> None:
    alpha = FakeProvider("alpha")

    def small_context(request: CompletionRequest) -> ProviderReply:
        if request.model == "small":
            raise ProviderError("alpha", ErrorKind.CONTEXT_LENGTH, "el mensaje excede el contexto", "acorta")
        return ProviderReply("big answers", model=request.model)

    alpha.behaviour = small_context
    monkeypatch.setenv("ALPHA_MODEL", "small")
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "alpha/small,alpha/big")
    result = await manager_with(alpha).complete("hola")
    assert (result.model, [c.model for c in alpha.calls]) == ("big", ["small", "big"])


async def test_a_short_429_is_waited_out_never_sooner_than_asked() -> None:
    alpha, beta = pair()
    alpha.behaviour = fails_then_answers(1, ErrorKind.RATE_LIMIT, retry_after=0.3)
    stamps: list[float] = []
    original = alpha.behaviour

    def timed(request: CompletionRequest) -> ProviderReply:
        stamps.append(time.monotonic())
        return original(request)

    alpha.behaviour = timed
    result = await manager_with(alpha, beta).complete("hola")
    assert result.provider == "alpha" and beta.calls == []
    assert stamps[1] - stamps[0] >= 0.3


async def test_a_long_429_falls_back_at_once_and_the_provider_rests(capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.RATE_LIMIT, "alpha")

    def long_wait(request: CompletionRequest) -> ProviderReply:
        raise ProviderError("alpha", ErrorKind.RATE_LIMIT, "Rate limit alcanzado", "espera", retry_after=40)

    alpha.behaviour = long_wait
    manager = manager_with(alpha, beta)
    started = time.monotonic()
    first = await manager.complete("hola")
    second = await manager.complete("otra")
    assert time.monotonic() - started < 1
    assert first.provider == second.provider == "beta" and len(alpha.calls) == 1
    assert second.failures[0].kind is ErrorKind.RATE_LIMIT and second.failures[0].skipped
    assert "libre en 40" in second.failures[0].message or "libre en 39" in second.failures[0].message
    assert manager.stats()["alpha"].skipped == 1


async def test_own_rpm_limit_falls_back_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_RPM", "2")
    alpha, beta = pair()
    manager = manager_with(alpha, beta)
    results = [await manager.complete(f"q{i}") for i in range(4)]
    assert [r.provider for r in results] == ["alpha", "alpha", "beta", "beta"]
    assert len(alpha.calls) == 2
    skip = results[2].failures[0]
    assert skip.kind is ErrorKind.RATE_LIMIT and skip.message.startswith(
        "límite de 2 solicitudes por minuto (ALPHA_RPM) alcanzado; libre en "
    )


async def test_rate_limit_without_fallback_fails_clearly_beyond_the_max_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_RPM", "1")
    monkeypatch.setenv("LLM_MAX_RATE_LIMIT_WAIT", "5")
    alpha, beta = pair()
    manager = manager_with(alpha, beta)
    await manager.complete("q", fallback=False)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await manager.complete("q", fallback=False)
    assert time.monotonic() - started < 1
    assert caught.value.kind is ErrorKind.RATE_LIMIT
    assert "más que el máximo de 5.0s (LLM_MAX_RATE_LIMIT_WAIT)" in caught.value.message
    assert "LLM_MAX_RATE_LIMIT_WAIT" in caught.value.suggestion and len(alpha.calls) == 1


async def test_rate_limit_without_fallback_waits_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    alpha = FakeProvider("alpha")
    manager = manager_with(alpha)
    manager._contexts["alpha"].quota.block("m1", 0.4)
    started = time.monotonic()
    result = await manager.complete("hola")
    assert result.provider == "alpha" and time.monotonic() - started >= 0.4
    assert "[WARNING] Rate limit alcanzado, esperando 0.4s... (alpha)" in capsys.readouterr().err


async def test_when_every_other_provider_fails_the_rate_limited_one_is_awaited() -> None:
    alpha, beta = pair()
    beta.behaviour = failing(ErrorKind.SERVER_ERROR, "beta")
    manager = manager_with(alpha, beta)
    manager._contexts["alpha"].quota.block("m1", 0.3)
    result = await manager.complete("hola")
    assert result.provider == "alpha" and len(beta.calls) == 3
    assert [f.provider for f in result.failures][:1] == ["alpha"] and result.failures[0].skipped


async def test_circuit_opens_skips_at_no_cost_and_probes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.3")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    manager = manager_with(alpha, beta)
    for _ in range(3):
        await manager.complete("hola")
    assert len(alpha.calls) == 3
    skipped = await manager.complete("hola")
    assert len(alpha.calls) == 3 and skipped.failures[0].kind is ErrorKind.CIRCUIT_OPEN
    [circuit] = manager.breakers.status("alpha")
    assert circuit.state is CircuitState.OPEN and 0 < circuit.retry_in <= 0.3
    block = providers_block(await manager.providers_status())
    assert "⏸ circuito abierto (m1): 3 fallos seguidos, próximo intento en 0s" in block

    await asyncio.sleep(0.3)
    alpha.behaviour = lambda request: ProviderReply("alpha is back", model=request.model)
    alpha.delay = 0.1
    results = await asyncio.gather(*(manager.complete(f"q{i}") for i in range(5)))
    assert len(alpha.calls) == 4  # one probe; the other four went to beta meanwhile
    assert sorted(r.provider for r in results) == ["alpha", "beta", "beta", "beta", "beta"]
    assert manager.breakers.status("alpha") == []
    assert (await manager.complete("hola")).provider == "alpha"


async def test_a_failed_probe_reopens_for_longer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.2")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.TIMEOUT, "alpha")
    manager = manager_with(alpha, beta)
    await manager.complete("hola")
    await asyncio.sleep(0.2)
    await manager.complete("hola")
    assert len(alpha.calls) == 2
    [circuit] = manager.breakers.status("alpha")
    assert circuit.cooldown == pytest.approx(0.4)
    err = capsys.readouterr().err
    # Each opening says why, and when the circuit is tried next (a background check, at most its cooldown away).
    assert "Circuito abierto para 'alpha' (m1) tras 1 fallos seguidos (boom): se omite sin llamarlo; próximo intento en 0." in err
    assert "Circuito abierto para 'alpha' (m1) tras 2 fallos seguidos (boom)" in err


async def test_request_faults_do_not_open_the_circuit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.CONTEXT_LENGTH, "alpha")
    manager = manager_with(alpha, beta)
    await manager.complete("hola")
    await manager.complete("hola")
    assert len(alpha.calls) == 2 and manager.breakers.status("alpha") == []


async def test_cancelled_probe_is_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_BREAKER_THRESHOLD", "1")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "0.05")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha")
    manager = manager_with(alpha, beta)
    await manager.complete("hola")
    await asyncio.sleep(0.05)
    alpha.behaviour = lambda request: ProviderReply("ok", model=request.model)
    alpha.delay = 5
    task = asyncio.create_task(manager.complete("hola"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    alpha.delay = 0
    assert (await manager.complete("hola")).provider == "alpha"


async def test_deadline_stops_a_silent_provider_and_names_the_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_REQUEST_DEADLINE", "0.3")
    alpha, beta = pair()
    alpha.delay = 5
    started = time.monotonic()
    with pytest.raises(AllProvidersFailedError) as caught:
        await manager_with(alpha, beta).complete("hola")
    assert time.monotonic() - started < 0.6
    assert str(caught.value).splitlines() == [
        "Se agotó el tiempo total de 0.3s (LLM_REQUEST_DEADLINE) sin respuesta:",
        "  - alpha: se agotó el tiempo total de 0.3s para la petición (LLM_REQUEST_DEADLINE). "
        "Aumenta LLM_REQUEST_DEADLINE o revisa los providers que no responden (/llm providers)",
    ]
    assert beta.calls == []


async def test_provider_timeout_is_a_timeout_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_TIMEOUT", "0.2")
    alpha, beta = pair()
    alpha.delay = 5
    result = await manager_with(alpha, beta).complete("hola")
    assert result.provider == "beta" and len(alpha.calls) == 1
    assert result.failures[0].kind is ErrorKind.TIMEOUT
    assert result.failures[0].message.startswith("el provider estuvo 0.2s sin enviar nada")
    assert result.failures[0].message == "el provider estuvo 0.2s sin enviar nada (ALPHA_TIMEOUT)"
    assert "sube ALPHA_TIMEOUT" in result.failures[0].suggestion


async def test_stats_block_shows_retries_and_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = pair()
    alpha.behaviour = fails_then_answers(1, ErrorKind.SERVER_ERROR)
    keyed = FakeProvider("keyed", key_env="KEYED_API_KEY", priority=0)
    manager = manager_with(keyed, alpha, beta)
    await manager.complete("hola")
    block = stats_block(manager)
    assert "  Requests: 2\n  Éxitos: 1\n  Fallos: 1" in block.split("alpha:")[1]  # the retry is the second request
    assert "  Omitido sin llamar (sin clave, circuito abierto, rate limit): 1" in block.split("keyed:")[1]
    assert manager.stats()["alpha"].retries == 1
    await manager.aclose()


@pytest.mark.parametrize(
    ("var", "value", "reason"),
    [
        ("LLM_MAX_RETRIES", "-1", "debe ser mayor o igual que 0"),
        ("LLM_REQUEST_DEADLINE", "0", "debe ser mayor que 0"),
        ("LLM_BREAKER_THRESHOLD", "tres", "debe ser un número entero"),
        ("LLM_MAX_RATE_LIMIT_WAIT", "mucho", "debe ser un número"),
    ],
)
def test_bad_resilience_settings_are_clear(monkeypatch: pytest.MonkeyPatch, var: str, value: str, reason: str) -> None:
    from patcode_core.errors import ConfigError

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        manager_with(FakeProvider("alpha"))
    assert f"{var}='{value}' no es válido: {reason}" in str(caught.value)


async def test_a_bad_provider_rpm_takes_only_that_provider_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_RPM", "-5")
    manager = manager_with(FakeProvider("alpha"), FakeProvider("beta", priority=60))
    status = {row.name: row for row in await manager.providers_status()}
    assert not status["alpha"].available and "ALPHA_RPM='-5' no es válido: debe ser mayor o igual que 0" in status["alpha"].reason
    assert status["beta"].available
    result = await manager.complete("hola", provider="alpha")
    assert result.provider == "beta" and result.failures[0].kind is ErrorKind.NOT_CONFIGURED
    await manager.aclose()


async def test_rpm_holds_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_RPM", "30")
    alpha, beta = pair()
    manager = manager_with(alpha, beta)
    results = await asyncio.gather(*(manager.complete(f"q{i}") for i in range(100)))
    assert len(alpha.calls) == 30 and len(beta.calls) == 70
    assert sum(r.provider == "alpha" for r in results) == 30


def test_connect_timeout_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from patcode_core.context import ProviderContext, Timeouts

    alpha = FakeProvider("alpha")
    manager = manager_with(alpha)
    context = ProviderContext(manager._contexts["alpha"].info, manager._contexts["alpha"].settings, Timeouts(connect=4))
    error = context.transport_error(httpx.ConnectTimeout("slow SYN"))
    assert error.kind is ErrorKind.TIMEOUT
    assert error.message.endswith(" en 4s") and error.message.startswith("no se pudo abrir la conexión con")
    assert error.suggestion == "La red o el servidor no responden; revisa tu conexión (o sube LLM_CONNECT_TIMEOUT)"


async def test_a_fallback_that_refuses_the_request_does_not_hide_that_the_primary_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 503 on the primary, then a 400 from the fallback (it rejects an assistant prefill): both are told."""
    from patcode_core.errors import AllProvidersFailedError

    monkeypatch.setenv("LLM_RETRY_BASE_DELAY", "0")
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.SERVER_ERROR, "alpha", "error del servidor (HTTP 503): overloaded")
    beta.behaviour = failing(ErrorKind.BAD_REQUEST, "beta", "petición rechazada (HTTP 400): does not support assistant message prefill")
    with pytest.raises(AllProvidersFailedError) as caught:
        await manager_with(alpha, beta).complete([{"role": "user", "content": "hola"}, {"role": "assistant", "content": "{"}])
    kinds = [(failure.provider, failure.kind) for failure in caught.value.failures]
    assert kinds[0] == ("alpha", ErrorKind.SERVER_ERROR) and kinds[-1] == ("beta", ErrorKind.BAD_REQUEST)
    assert "HTTP 503" in str(caught.value) and "prefill" in str(caught.value)


async def test_a_request_at_fault_on_the_first_provider_is_its_own_error() -> None:
    alpha, beta = pair()
    alpha.behaviour = failing(ErrorKind.CONTENT_FILTER, "alpha", "rechazado por el filtro de contenido")
    with pytest.raises(ProviderError) as caught:
        await manager_with(alpha, beta).complete("hola")
    assert caught.value.kind is ErrorKind.CONTENT_FILTER and beta.calls == []
