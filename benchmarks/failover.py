"""Time to an answer when the primary is down: port closed, circuit open, or the healthy provider called directly.

Three LLMManagers answer the same prompt from the same loopback server (the
healthy provider, Ollama-style):

- **direct**: the route is only the healthy provider;
- **circuit open**: the primary (chat-completions style) is first in the
  route, its circuit already open, so it is skipped without a request;
- **port closed**: the primary is first and its port refuses connections;
  its circuit never opens (threshold set out of reach), so every call pays
  for the refused connection before falling back.

The three run interleaved in blocks so machine noise hits them alike. Goal:
an open circuit costs under 5 % over calling the healthy provider directly.

    .venv/bin/python benchmarks/failover.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from _loopback import FakeProviderServer, closed_port_url, summary

PROMPT = "Write a haiku about fallbacks."
BLOCK = 100


def manager_for(server_url: str, primary_url: str, route: str, threshold: int) -> object:
    from patcode_core.manager import LLMManager
    from patcode_core.plugins import PluginHost

    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": "openai,ollama",
            "OPENAI_API_KEY": "sk-benchmark-not-a-real-key-0000",
            "OPENAI_BASE_URL": f"{primary_url}/v1",
            "OLLAMA_BASE_URL": server_url,
            "LLM_FALLBACK_ORDER": route,
            "LLM_DEFAULT_PROVIDER": route.split(",")[0],
            "LLM_MAX_RETRIES": "0",
            "LLM_BREAKER_THRESHOLD": str(threshold),
            "LLM_BREAKER_COOLDOWN": "3600",
            "PATCODE_LOG_LEVEL": "error",
        }
    )
    return LLMManager(host=PluginHost.discover(), env_file=None)


async def measure(call: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def run(calls: int) -> None:
    server = FakeProviderServer()
    closed = closed_port_url()
    try:
        direct = manager_for(server.url, closed, "ollama", threshold=3)
        circuit_open = manager_for(server.url, closed, "openai,ollama", threshold=3)
        port_closed = manager_for(server.url, closed, "openai,ollama", threshold=1_000_000)
        managers = {"direct": direct, "circuit open": circuit_open, "port closed": port_closed}
        for _ in range(3):  # open the circuit (three refused connections)
            await circuit_open.complete(PROMPT)  # type: ignore[attr-defined]
        assert circuit_open.breakers.status("openai"), "the circuit should be open"  # type: ignore[attr-defined]

        def caller(manager: object) -> Callable[[], Awaitable[object]]:
            async def call() -> object:
                result = await manager.complete(PROMPT)  # type: ignore[attr-defined]
                assert result.provider == "ollama"
                return result

            return call

        samples: dict[str, list[float]] = {name: [] for name in managers}
        for manager in managers.values():
            await measure(caller(manager), 100)  # warm-up
        for _ in range(max(1, calls // BLOCK)):
            for name, manager in managers.items():
                samples[name] += await measure(caller(manager), BLOCK)
        direct_p50, direct_p99 = summary(samples["direct"])
        print(f"{calls} sequential calls each, answered by the healthy provider on loopback")
        for name in managers:
            p50, p99 = summary(samples[name])
            print(f"  {name:13s} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   ratio to direct p50 {p50 / direct_p50:.3f}x")
        open_p50, _ = summary(samples["circuit open"])
        print(f"  circuit open costs {100 * (open_p50 / direct_p50 - 1):+.1f}% over direct (goal: under +5%)")
        skipped = circuit_open.stats()["openai"].skipped  # type: ignore[attr-defined]
        print(f"  primary requests while open: {circuit_open.stats()['openai'].requests - 3}, skips: {skipped}")  # type: ignore[attr-defined]
        for manager in managers.values():
            await manager.aclose()  # type: ignore[attr-defined]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(run(args.calls))


if __name__ == "__main__":
    main()
