"""The local provider: PatCode's stream vs llama-cpp-python called directly, same model, prompt and settings.

Both sides load the same GGUF (the default SmolLM2-135M-Instruct, or
``LOCAL_MODEL_PATH``) with the same context size and thread count, and
stream the same chat messages with ``temperature=0`` and the same
``max_tokens``, so they write the very same tokens:

- **direct**: ``Llama.create_chat_completion(stream=True)`` in this thread;
- **patcode**: ``LLMManager.stream(provider="local")`` (worker thread, queue,
  stop flag, the core's stream runner; history off).

Runs are interleaved (direct first in even rounds, patcode first in odd ones) and each round uses a new
prompt, so both sides evaluate a prompt each time rather than reusing the
previous one's cache. Figures: time to first token, tokens/s over the whole
answer (completion tokens / time from request to the last token) and the
ratio patcode/direct (goal: >= 0.97). Also the model's load time (first use
inside PatCode, and a direct ``Llama(...)``), and the CLI's peak RSS while
the local model answers ``patcode chat`` (no key, Ollama on a closed port).

    .venv/bin/python benchmarks/local.py [--rounds 15] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _loopback import closed_port_url

STORY = "Write a short story about a dragon who learns to bake bread, in about {n} words (take {i})."


def prompt(round_: int, max_tokens: int) -> str:
    return STORY.format(n=max_tokens * 2, i=round_)


def direct_run(llama: object, text: str, max_tokens: int) -> tuple[float, float, str]:
    """(seconds to first token, seconds to the last, text) of one direct streamed answer."""
    started = time.perf_counter()
    first = None
    parts = []
    for chunk in llama.create_chat_completion(  # type: ignore[attr-defined]
        [{"role": "user", "content": text}], temperature=0, max_tokens=max_tokens, stream=True
    ):
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            parts.append(content)
            if first is None:
                first = time.perf_counter() - started
    ended = time.perf_counter() - started
    assert first is not None
    return first, ended, "".join(parts)


async def patcode_run(manager: object, text: str, max_tokens: int) -> tuple[float, float, str, int]:
    """(seconds to first token, seconds to the last, text, completion tokens the model counted) through PatCode."""
    from patcode_core.types import CompletionResult, TextDelta

    started = time.perf_counter()
    first = None
    result = None
    async for event in manager.stream(text, provider="local", fallback=False, temperature=0, max_tokens=max_tokens):  # type: ignore[attr-defined]
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter() - started
        elif isinstance(event, CompletionResult):
            result = event
    ended = time.perf_counter() - started
    assert first is not None and result is not None
    return first, ended, result.text, result.usage.output_tokens or 0


#: Runs one command and prints its peak RSS (KB): a small interpreter forks it, so the parent's memory is not counted.
_RSS_PROBE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "out = subprocess.run(sys.argv[1:], capture_output=True, text=True).stdout\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, (out.splitlines() or [''])[0])\n"
)


def peak_rss_mb(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, first line of stdout) of one fresh process."""
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, *command], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    kilobytes, seconds, first_line = probe.stdout.rstrip("\n").split(" ", 2)
    return int(kilobytes) / 1024, float(seconds), first_line


async def run(rounds: int, max_tokens: int) -> None:
    os.environ.update({"PATCODE_LOAD_PLUGINS": "local", "LLM_STATS_STORE": "off", "PATCODE_LOG_LEVEL": "warning"})
    from llama_cpp import Llama
    from patcode_local.model_file import what_is_missing
    from patcode_local.runtime import EngineKey, engine_for

    from patcode_core.manager import LLMManager

    manager = LLMManager(env_file=None)
    settings = manager.settings.llm.provider("local")
    path, missing = what_is_missing(settings.model_path)
    if missing is not None:
        sys.exit(f"{missing.reason}. {missing.suggestion}")
    engine = engine_for(EngineKey(os.fspath(path), settings.n_ctx, settings.threads))
    print(f"\nmodel {path.name} · n_ctx {settings.n_ctx} · threads {settings.threads} · max_tokens {max_tokens} · temperature 0")

    loads = []
    for _ in range(3):
        started = time.perf_counter()
        llama = Llama(
            model_path=os.fspath(path),
            n_ctx=settings.n_ctx,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            verbose=False,
        )
        loads.append(time.perf_counter() - started)
        if _ < 2:
            llama.close()
    started = time.perf_counter()
    await patcode_run(manager, prompt(-1, max_tokens), 4)  # first use: loads the model in the worker
    first_use = time.perf_counter() - started
    print(
        f"model load: direct Llama(...) median {statistics.median(loads) * 1000:.0f} ms of 3; "
        f"inside PatCode {engine.load_seconds * 1000:.0f} ms (first answer, load included: {first_use * 1000:.0f} ms)"
    )

    direct_run(llama, prompt(-2, max_tokens), max_tokens)  # warm-up, both sides
    await patcode_run(manager, prompt(-2, max_tokens), max_tokens)
    samples: dict[str, list[tuple[float, float, int]]] = {"direct": [], "patcode": []}
    different = 0
    for round_ in range(rounds):
        text = prompt(round_, max_tokens)
        if round_ % 2:  # ABBA order: neither side always goes first
            p_first, p_ended, p_text, tokens = await patcode_run(manager, text, max_tokens)
            d_first, d_ended, d_text = direct_run(llama, text, max_tokens)
        else:
            d_first, d_ended, d_text = direct_run(llama, text, max_tokens)
            p_first, p_ended, p_text, tokens = await patcode_run(manager, text, max_tokens)
        different += d_text != p_text
        # Temperature 0: the same tokens on both sides, counted once by the model.
        samples["direct"].append((d_first, d_ended, tokens))
        samples["patcode"].append((p_first, p_ended, tokens))
    await manager.aclose()
    if different:
        print(f"WARNING: {different} of {rounds} rounds wrote different text on the two sides")

    def medians(name: str) -> tuple[float, float, float]:
        runs = samples[name]
        return (
            statistics.median(first for first, _, _ in runs),
            statistics.median(tokens / ended for _, ended, tokens in runs),
            statistics.median(tokens for _, _, tokens in runs),
        )

    (d_first, d_rate, d_tokens), (p_first, p_rate, p_tokens) = medians("direct"), medians("patcode")
    print(f"\n{rounds} interleaved rounds, medians")
    print(f"  {'':8} {'first token':>12} {'tokens/s':>10} {'tokens':>7}")
    print(f"  {'direct':8} {d_first * 1000:10.1f}ms {d_rate:10.1f} {d_tokens:7.0f}")
    print(f"  {'patcode':8} {p_first * 1000:10.1f}ms {p_rate:10.1f} {p_tokens:7.0f}")
    ratio = p_rate / d_rate
    print(f"  tokens/s ratio patcode/direct: {ratio:.3f}  (goal >= 0.97: {'ok' if ratio >= 0.97 else 'MISSED'})")
    print(f"  first token: patcode {(p_first - d_first) * 1000:+.1f} ms vs direct")


def cli_rss() -> None:
    """Peak RSS of ``patcode chat`` answered by the local model, next to commands that load no model."""
    patcode = str(Path(sys.executable).parent / "patcode")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "GROQ_", "OPENAI_", "OLLAMA_", "PATCODE_", "LOCAL_"))}
    with tempfile.TemporaryDirectory() as home:
        env.update({"PATCODE_HOME": home, "OLLAMA_BASE_URL": closed_port_url(), "LLM_MAX_TOKENS": "64"})
        print("CLI peak RSS (one fresh process each; no key, Ollama on a closed port, LLM_MAX_TOKENS=64)")
        for label, command in (
            ("patcode --help", [patcode, "--help"]),
            ("patcode llm providers", [patcode, "llm", "providers"]),
            ('patcode chat "hola" (local answers)', [patcode, "chat", "hola"]),
        ):
            rss, wall, first_line = peak_rss_mb(command, env, home)
            print(f"  {label:38} {rss:6.0f} MB  {wall:5.2f} s  {first_line[:60]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    cli_rss()
    asyncio.run(run(args.rounds, args.max_tokens))


if __name__ == "__main__":
    main()
