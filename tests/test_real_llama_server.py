"""The openai and groq plugins against a real OpenAI-compatible server nobody here wrote.

llama-cpp-python's ``llama_cpp.server`` serves SmolLM2-135M on loopback. It
broke PatCode in ways no fake showed: it ignores ``max_completion_tokens`` and
``stream_options.include_usage``, lists its model under the file's path,
answers any model name, and cuts a running stream (``[DONE]`` without a
``finish_reason``) when a new request arrives. Temperature 0 makes its answers
deterministic, so a cut answer can be told from a whole one by comparison.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from fakes.llama_server import LlamaServer

from patcode_core.errors import PatCodeError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.types import CompletionResult, StreamRestarted, TextDelta

PATCODE = str(Path(sys.executable).with_name("patcode"))
KEYS = {"openai": "sk-loopback-llama-test-000000000000", "groq": "gsk_loopback_llama_test_0000000000"}
STORY = "Write a long story about a dragon"


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer()
    yield server
    server.stop()


def provider_env(llama: LlamaServer, *providers: str, **extra: str) -> dict[str, str]:
    """Each provider pointed at the server, temperature 0, only these plugins loaded."""
    env = {"PATCODE_LOAD_PLUGINS": ",".join(providers), "LLM_FALLBACK_ORDER": ",".join(providers), "LLM_TEMPERATURE": "0"}
    for provider in providers:
        prefix = provider.upper()
        env.update({f"{prefix}_BASE_URL": llama.url, f"{prefix}_API_KEY": KEYS[provider], f"{prefix}_MODEL": "smollm2"})
    return {**env, **extra}


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def run_cli(args: list[str], env: dict[str, str], home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_", "LOCAL_"))}
    return subprocess.run(
        [PATCODE, *args],
        env={**base, "PATCODE_LANG": "es", "PATCODE_HOME": str(home / "home"), **env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def answer(stream: bool, prompt: str = STORY) -> CompletionResult:
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        if not stream:
            return await manager.complete(prompt)
        async for event in manager.stream(prompt):
            if isinstance(event, CompletionResult):
                return event
    raise AssertionError("the stream ended without a result")


# -- a. the token limit reaches the server --------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "groq"])
async def test_the_token_limit_is_obeyed_streamed_and_not(
    llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    set_env(monkeypatch, provider_env(llama, provider, LLM_MAX_TOKENS="12"))
    plain = await answer(stream=False)
    streamed = await answer(stream=True)
    assert plain.provider == streamed.provider == provider
    assert plain.finish_reason == streamed.finish_reason == "length"
    assert plain.usage.output_tokens == 12  # not the 1,715 tokens max_completion_tokens alone let through
    assert streamed.text == plain.text  # greedy decoding: the same 12 tokens, so the stream was cut at 12 too


async def test_forcing_the_field_the_server_ignores_warns_that_the_limit_was_not_kept(
    llama: LlamaServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(monkeypatch, provider_env(llama, "openai", LLM_MAX_TOKENS="8", OPENAI_MAX_TOKENS_FIELD="max_completion_tokens"))
    monkeypatch.setenv("LLM_REQUEST_DEADLINE", "120")
    result = await answer(stream=False, prompt="Count from one to forty in words, separated by commas")
    assert result.usage.output_tokens is not None and result.usage.output_tokens > 8
    warnings = [line for line in capsys.readouterr().err.splitlines() if "8" in line and "tokens" in line]
    assert len(warnings) == 1, warnings
    assert "cortada por el límite" not in warnings[0]


# -- b. llm providers -----------------------------------------------------------------------


def test_llm_providers_is_green_with_a_note_for_a_server_that_answers_any_model(llama: LlamaServer, tmp_path: Path) -> None:
    result = run_cli(["llm", "providers"], provider_env(llama, "openai", OPENAI_MODEL="gpt-4o-mini"), tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "openai" in line)
    assert line.startswith("  ✅ openai") and "el servidor no lista 'gpt-4o-mini' pero responde con ese nombre" in line
    assert llama.model_id[:60] in line and "platform.openai.com" not in result.stdout


# -- d. *_TIMEOUT means the same streamed and piped -----------------------------------------


def test_a_piped_answer_longer_than_the_timeout_says_which_limit_and_how_to_fix_it(llama: LlamaServer, tmp_path: Path) -> None:
    env = provider_env(llama, "openai", OPENAI_TIMEOUT="1", LLM_MAX_TOKENS="400", LLM_MAX_RETRIES="0")
    result = run_cli(["chat", STORY], env, tmp_path)
    assert result.returncode == 1
    assert "el provider estuvo 1s sin enviar nada (OPENAI_TIMEOUT)" in result.stderr
    assert "Sin streaming la respuesta llega entera al final" in result.stderr
    assert "Connection timeout" not in result.stderr and "Traceback" not in result.stderr
    llama.wait_idle()  # the server goes on generating the abandoned answer


async def test_a_stream_longer_than_the_timeout_is_not_cut_while_it_keeps_coming(
    llama: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch, provider_env(llama, "openai", OPENAI_TIMEOUT="3", LLM_MAX_TOKENS="800"))
    result = await answer(stream=True)
    assert result.provider == "openai" and not result.failures and result.finish_reason in ("stop", "length")
    assert result.latency > 3  # longer than OPENAI_TIMEOUT as a whole, never silent that long


# -- the CLI through the real server, streamed on a terminal and piped ----------------------


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_chat_piped_answers_through_the_real_server(llama: LlamaServer, tmp_path: Path, provider: str) -> None:
    result = run_cli(["chat", "Say hello"], provider_env(llama, provider, LLM_MAX_TOKENS="24"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr


def test_chat_streamed_on_a_terminal_through_the_real_server(llama: LlamaServer, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_", "LOCAL_"))},
        **provider_env(llama, "groq", LLM_MAX_TOKENS="24"),
        "PATCODE_LANG": "es",
        "PATCODE_HOME": str(tmp_path / "home"),
        "TERM": "xterm",
    }
    child = pexpect.spawn(PATCODE, ["chat", "Say hello"], env=env, cwd=str(tmp_path), encoding="utf-8", timeout=60)
    child.expect_exact("── groq · smollm2")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before


# -- f. concurrent streams: the server cuts the running one when a new one arrives ----------


async def test_concurrent_streams_never_pass_off_a_cut_answer_as_whole(llama: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = "List ten animals, one per line"
    set_env(monkeypatch, provider_env(llama, "openai", "groq", LLM_MAX_TOKENS="60", LLM_MAX_RETRIES="1"))
    whole = (await answer(stream=False, prompt=prompt)).text  # greedy: the one complete answer

    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:

        async def one(delay: float) -> tuple[CompletionResult | PatCodeError, int]:
            await asyncio.sleep(delay)
            restarts = 0
            try:
                async for event in manager.stream(prompt):
                    if isinstance(event, StreamRestarted):
                        restarts += 1
                    elif isinstance(event, CompletionResult):
                        return event, restarts
                    else:
                        assert isinstance(event, TextDelta | object)
            except PatCodeError as error:
                return error, restarts
            raise AssertionError("no result")

        outcomes = await asyncio.gather(*(one(0.15 * i) for i in range(5)))

    results = [outcome for outcome, _ in outcomes if isinstance(outcome, CompletionResult)]
    assert results, "no stream succeeded"
    for result in results:
        assert result.text == whole, "a cut answer came back as a success"
        assert result.finish_reason in ("stop", "length")
    assert sum(restarts for _, restarts in outcomes) + sum(isinstance(o, PatCodeError) for o, _ in outcomes) >= 1, (
        "the server cut no stream: the test did not exercise interruption"
    )


# -- g. the Ollama plugin pointed at an OpenAI-compatible server ----------------------------


def test_the_ollama_plugin_pointed_at_it_says_to_use_the_openai_plugin(llama: LlamaServer, tmp_path: Path) -> None:
    env = {"PATCODE_LOAD_PLUGINS": "ollama", "OLLAMA_BASE_URL": llama.root}
    result = run_cli(["llm", "providers"], env, tmp_path)
    assert f"usa el plugin openai con OPENAI_BASE_URL={llama.root}/v1" in result.stdout + result.stderr


# -- c. streamed answers the server does not count: unknown, never 0 -------------------------


def test_streamed_answers_without_counts_are_shown_as_unknown_not_zero(llama: LlamaServer, tmp_path: Path) -> None:
    import json

    env = provider_env(llama, "openai", LLM_MAX_TOKENS="8")
    piped = run_cli(["chat", "Say hello"], env, tmp_path)  # plain: the server counts it
    assert piped.returncode == 0, piped.stderr
    child = pexpect.spawn(
        PATCODE,
        ["chat", "Say hello"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_", "PATCODE_"))},
             **env, "PATCODE_LANG": "es", "PATCODE_HOME": str(tmp_path / "home"), "TERM": "xterm"},
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("sin recuento de tokens")  # the streamed answer's footer
    child.expect(pexpect.EOF)
    child.close()
    stats = json.loads(run_cli(["llm", "stats", "--json"], env, tmp_path).stdout)
    text = run_cli(["llm", "stats"], env, tmp_path).stdout
    assert "(+1 respuesta sin recuento)" in text, text
    assert json.dumps(stats).count('"uncounted_answers": 1') >= 1, stats
