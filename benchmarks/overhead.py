"""PatCode's routing overhead: one LLMManager completion vs a raw httpx POST to the same loopback server.

Both sides send the same chat-completions request to the same server process
and parse the JSON answer; they run interleaved in blocks so machine noise
hits both alike. Prints p50/p99 per call, sequentially and with 100 calls in
flight, the p50 ratio (goal: within 1.2x of raw httpx) and the throughput.
With calls in flight PatCode queues them in order on the provider's 32
connection slots, so its p99 is far lower than raw httpx's and its p50 a
little higher: throughput is the fairer overhead figure there.

    .venv/bin/python benchmarks/overhead.py [--calls 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import httpx

from _loopback import FakeProviderServer, summary

PROMPT = "Write a haiku about fallbacks."
BLOCK = 100


def configure(server_url: str) -> None:
    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": "openai",
            "OPENAI_API_KEY": "sk-benchmark-not-a-real-key-0000",
            "OPENAI_BASE_URL": f"{server_url}/v1",
            "PATCODE_LOG_LEVEL": "warning",
        }
    )


async def measure(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(calls)))
    return samples


async def run(calls: int, concurrency: int) -> None:
    from patcode_core.manager import LLMManager

    server = FakeProviderServer()
    try:
        configure(server.url)
        manager = LLMManager(env_file=None)
        from patcode_core.context import MAX_CONNECTIONS

        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        raw = httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=30, limits=limits)
        payload = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": PROMPT}],
            "temperature": 0.7,
            "max_completion_tokens": 1024,
            "stream": False,
        }
        headers = {"Authorization": "Bearer sk-benchmark-not-a-real-key-0000"}

        async def raw_call() -> object:
            response = await raw.post("/chat/completions", json=payload, headers=headers)
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        async def patcode_call() -> object:
            return (await manager.complete(PROMPT, fallback=False)).text

        for label, parallel in (("sequential", 1), (f"{concurrency} concurrent", concurrency)):
            await measure(raw_call, 200, parallel)  # warm-up both pools
            await measure(patcode_call, 200, parallel)
            raw_samples: list[float] = []
            patcode_samples: list[float] = []
            walls = {"raw": 0.0, "patcode": 0.0}
            block = BLOCK if parallel == 1 else max(BLOCK, parallel * 5)
            for _ in range(max(1, calls // block)):
                started = time.perf_counter()
                raw_samples += await measure(raw_call, block, parallel)
                walls["raw"] += time.perf_counter() - started
                started = time.perf_counter()
                patcode_samples += await measure(patcode_call, block, parallel)
                walls["patcode"] += time.perf_counter() - started
            raw_p50, raw_p99 = summary(raw_samples)
            pc_p50, pc_p99 = summary(patcode_samples)
            print(f"{label} ({len(raw_samples)} calls each)")
            print(f"  raw httpx      p50 {raw_p50:7.3f} ms   p99 {raw_p99:7.3f} ms")
            print(f"  LLMManager     p50 {pc_p50:7.3f} ms   p99 {pc_p99:7.3f} ms")
            print(f"  ratio p50 {pc_p50 / raw_p50:.3f}x   p99 {pc_p99 / raw_p99:.3f}x   (goal: p50 <= 1.2x)")
            raw_rate, pc_rate = len(raw_samples) / walls["raw"], len(patcode_samples) / walls["patcode"]
            print(f"  throughput     raw {raw_rate:7.0f} calls/s   LLMManager {pc_rate:7.0f} calls/s   ratio {pc_rate / raw_rate:.3f}x")
        await raw.aclose()
        await manager.aclose()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
