"""PatCode's overhead: an LLMManager completion vs a raw httpx POST to the same loopback server.

Every side sends the same chat-completions request to the same server
process and parses the JSON answer; they run interleaved in blocks so
machine noise hits them alike. Sides:

- **raw httpx**: the baseline;
- **store off**: ``LLM_STATS_STORE=off`` (history in memory);
- **store on**: the SQLite usage history (the default), written off the call's path;
- **cache hit**: ``LLM_CACHE=true`` with the answer already cached (no request at all).

Goals: the manager's p50 within 1.2x of raw httpx with the store on, and a
cache hit under a tenth of an uncached loopback call. With calls in flight
PatCode queues them in order on the provider's 32 connection slots, so its
p99 is far lower than raw httpx's and its p50 a little higher: throughput is
the fairer overhead figure there.

    .venv/bin/python benchmarks/overhead.py [--calls 2000] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

import httpx
from _loopback import FakeProviderServer, summary

PROMPT = "Write a haiku about fallbacks."
BLOCK = 100


def manager_with(server_url: str, home: str, **values: str) -> object:
    from patcode_core.manager import LLMManager

    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": "openai",
            "OPENAI_API_KEY": "sk-benchmark-not-a-real-key-0000",
            "OPENAI_BASE_URL": f"{server_url}/v1",
            "PATCODE_LOG_LEVEL": "warning",
            "PATCODE_HOME": home,
            "LLM_STATS_STORE": "on",
            "LLM_CACHE": "false",
            **values,
        }
    )
    return LLMManager(env_file=None)


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
    from patcode_core.connection_slots import MAX_CONNECTIONS

    server = FakeProviderServer()
    home = tempfile.mkdtemp(prefix="patcode-bench-")
    try:
        managers = {
            "store off": manager_with(server.url, home, LLM_STATS_STORE="off"),
            "store on": manager_with(server.url, home),
            "cache hit": manager_with(server.url, home, LLM_CACHE="true"),
        }
        await managers["cache hit"].complete(PROMPT, fallback=False)  # type: ignore[attr-defined]
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

        def patcode(manager: object) -> Callable[[], Awaitable[object]]:
            async def call() -> object:
                return (await manager.complete(PROMPT, fallback=False)).text  # type: ignore[attr-defined]

            return call

        sides: dict[str, Callable[[], Awaitable[object]]] = {"raw httpx": raw_call}
        sides.update({name: patcode(manager) for name, manager in managers.items()})
        for label, parallel in (("sequential", 1), (f"{concurrency} concurrent", concurrency)):
            for call in sides.values():
                await measure(call, 200, parallel)  # warm-up
            samples: dict[str, list[float]] = {name: [] for name in sides}
            walls = dict.fromkeys(sides, 0.0)
            block = BLOCK if parallel == 1 else max(BLOCK, parallel * 5)
            for _ in range(max(1, calls // block)):
                for name, call in sides.items():
                    started = time.perf_counter()
                    samples[name] += await measure(call, block, parallel)
                    walls[name] += time.perf_counter() - started
            raw_p50, raw_p99 = summary(samples["raw httpx"])
            raw_rate = len(samples["raw httpx"]) / walls["raw httpx"]
            print(f"{label} ({len(samples['raw httpx'])} calls each)")
            for name in sides:
                p50, p99 = summary(samples[name])
                rate = len(samples[name]) / walls[name]
                print(
                    f"  {name:10s} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  {rate:7.0f} calls/s"
                    f"   vs raw: p50 {p50 / raw_p50:.3f}x  p99 {p99 / raw_p99:.3f}x  throughput {rate / raw_rate:.3f}x"
                )
            on_p50 = summary(samples["store on"])[0]
            hit_p50 = summary(samples["cache hit"])[0]
            print(f"  goals: store on p50 {on_p50 / raw_p50:.3f}x raw (<= 1.2x); "
                  f"cache hit p50 {hit_p50 / raw_p50:.3f} of an uncached call (< 0.1)")
        await raw.aclose()
        for manager in managers.values():
            await manager.aclose()  # type: ignore[attr-defined]
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
