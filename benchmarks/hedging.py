"""What ``LLM_HEDGE`` buys and costs: a primary with a slow tail, with hedging off, auto and fixed.

The primary (openai style) answers most streams' first token after
``--fast`` seconds and one in ``--tail-every`` after ``--slow`` seconds; the
fallback (ollama style) always after ``--fallback`` seconds. Both are the
project's loopback fault server, as real processes. Each policy gets the
same scripted sequence, after the same warm-up (so ``auto`` has learned the
primary's p95). Printed per policy: p50/p95/p99/max of the time to the whole
answer, and the extra requests the hedges sent (their cost).

    .venv-test/bin/python benchmarks/hedging.py [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from _loopback import FakeProviderServer, percentile

PROMPT = "uno dos tres"


def fault(first_token: float) -> dict[str, object]:
    return {"type": "stream", "mode": "ok", "first_token_delay": first_token}


async def run_policy(policy: str, primary: FakeProviderServer, fallback: FakeProviderServer, args: argparse.Namespace) -> str:
    from patcode_core.manager import LLMManager
    from patcode_core.types import CompletionResult

    primary.reset()
    fallback.reset()
    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": "openai,ollama",
            "OPENAI_API_KEY": "sk-benchmark-not-a-real-key-0000",
            "OPENAI_BASE_URL": f"{primary.url}/v1",
            "OLLAMA_BASE_URL": fallback.url,
            "LLM_FALLBACK_ORDER": "openai,ollama",
            "LLM_HEDGE": policy,
            "PATCODE_LOG_LEVEL": "error",
            "PATCODE_HOME": tempfile.mkdtemp(prefix="patcode-hedge-"),
        }
    )
    pattern = [args.slow if (index + 1) % args.tail_every == 0 else args.fast for index in range(args.calls)]
    warm = [args.fast] * 20
    primary.fault("chat", *[fault(seconds) for seconds in warm + pattern])
    fallback.fault("chat", *[fault(args.fallback)] * (len(warm) + len(pattern)))
    samples: list[float] = []
    winners = {"openai": 0, "ollama": 0}
    async with LLMManager(env_file=None) as manager:
        for index in range(len(warm) + len(pattern)):
            started = time.perf_counter()
            async for event in manager.stream(PROMPT):
                if isinstance(event, CompletionResult):
                    if index >= len(warm):
                        samples.append(time.perf_counter() - started)
                        winners[event.provider] += 1
        hedge_after = manager.learned_limits.limits("openai", "gpt-4o-mini", 30).hedge_after
    extra = len(fallback.requests("chat"))
    return (
        f"LLM_HEDGE={policy:5s} p50 {percentile(samples, 0.5):.3f}s  p95 {percentile(samples, 0.95):.3f}s  "
        f"p99 {percentile(samples, 0.99):.3f}s  max {max(samples):.3f}s  | answered by primary {winners['openai']}, "
        f"fallback {winners['ollama']}; extra requests {extra} ({100 * extra / len(samples):.1f} % of calls)"
        + (f"; learned p95 {hedge_after:.3f}s" if policy == "auto" and hedge_after is not None else "")
    )


async def main(args: argparse.Namespace) -> None:
    primary, fallback = FakeProviderServer(), FakeProviderServer()
    try:
        print(
            f"{args.calls} streams; primary first token {args.fast}s, every {args.tail_every}th {args.slow}s; "
            f"fallback {args.fallback}s"
        )
        for policy in ("off", "auto", "1"):
            print(await run_policy(policy, primary, fallback, args), flush=True)
    finally:
        primary.stop()
        fallback.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--fast", type=float, default=0.1)
    parser.add_argument("--slow", type=float, default=4.0)
    parser.add_argument("--tail-every", type=int, default=10)
    parser.add_argument("--fallback", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))
