"""PatCode vs a raw httpx call through a real OpenAI-compatible server: llama-cpp-python's ``llama_cpp.server``.

Both sides send the same request body (``max_tokens``, temperature 0, the
same prompt) to the same server process serving SmolLM2-135M, one at a time
(the server runs one generation at a time), interleaved call by call so
machine noise hits both alike. Figures: the median wall time of a plain
call and of a streamed one (to the last token), and the ratio PatCode/raw.
The model's own time dominates: this shows what PatCode adds to a real call,
not PatCode's overhead on an instant server (``overhead.py`` measures that).

    .venv-test/bin/python benchmarks/real_server.py [--calls 30] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.llama_server import LlamaServer  # noqa: E402

PROMPT = "Write a haiku about fallbacks."
KEY = "sk-benchmark-not-a-real-key-0000"


async def run(calls: int, tokens: int) -> None:
    server = LlamaServer()
    home = tempfile.mkdtemp(prefix="patcode-bench-")
    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": "openai",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": server.url,
            "OPENAI_MODEL": "smollm2",
            "LLM_MAX_TOKENS": str(tokens),
            "LLM_TEMPERATURE": "0",
            "PATCODE_LOG_LEVEL": "error",
            "PATCODE_HOME": home,
        }
    )
    from patcode_core.manager import LLMManager

    manager = LLMManager(env_file=None)
    raw = httpx.AsyncClient(base_url=server.url, timeout=60)
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.0,
        "max_tokens": tokens,
        "stream": False,
    }
    headers = {"Authorization": f"Bearer {KEY}"}

    async def raw_plain() -> str:
        response = await raw.post("/chat/completions", json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    async def raw_stream() -> str:
        text = []
        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with raw.stream("POST", "/chat/completions", json=streamed, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    text.append(choices[0].get("delta", {}).get("content") or "")
        return "".join(text)

    async def patcode_plain() -> str:
        return (await manager.complete(PROMPT, fallback=False)).text

    async def patcode_stream() -> str:
        text = []
        async for event in manager.stream(PROMPT, fallback=False):
            if hasattr(event, "text") and type(event).__name__ == "TextDelta":
                text.append(event.text)
        return "".join(text)

    pairs: dict[str, tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[str]]]] = {
        "plain": (raw_plain, patcode_plain),
        "stream": (raw_stream, patcode_stream),
    }
    try:
        for label, (baseline, ours) in pairs.items():
            assert await baseline() == await ours(), "both sides must get the same answer"  # and warm-up
            samples: dict[str, list[float]] = {"raw": [], "patcode": []}
            for _ in range(calls):
                for side, call in (("raw", baseline), ("patcode", ours)):
                    started = time.perf_counter()
                    await call()
                    samples[side].append(time.perf_counter() - started)
            raw_median = statistics.median(samples["raw"]) * 1000
            ours_median = statistics.median(samples["patcode"]) * 1000
            print(
                f"{label:6s} ({calls} calls each, {tokens} tokens): raw httpx {raw_median:7.1f} ms  "
                f"PatCode {ours_median:7.1f} ms  ratio {ours_median / raw_median:.3f}x"
            )
    finally:
        await raw.aclose()
        await manager.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.tokens))


if __name__ == "__main__":
    main()
