"""Cold start: ``patcode --help``, ``patcode llm providers`` and ``import patcode_core``, median of several runs.

Each figure is a fresh process timed from the outside (wall clock), with a
bare ``python -c pass`` measured in the same run as the baseline. ``llm
providers`` checks real providers: Ollama is pointed at the loopback fake
server, Groq and OpenAI have no key (answered without network), as on a
fresh machine with Ollama running. Goal: under 0.3 s for the CLI commands.

    .venv/bin/python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _loopback import FakeProviderServer

BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    server = FakeProviderServer()
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("LLM_", "GROQ_", "OPENAI_", "OLLAMA_", "PATCODE_"))}
        env["OLLAMA_BASE_URL"] = server.url
        # These machines set PYTHONDONTWRITEBYTECODE, so every start would compile
        # PatCode's sources again; a user's Python caches them, and so does this run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "import patcode_core": [sys.executable, "-c", "import patcode_core"],
            "import patcode_core.manager": [sys.executable, "-c", "import patcode_core.manager"],
            "patcode --help": [str(BIN / "patcode"), "--help"],
            "patcode llm providers": [str(BIN / "patcode"), "llm", "providers"],
        }
        with tempfile.TemporaryDirectory() as cwd:
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for command in commands.values():
                timed(command, env, cwd)  # warm the file cache and .pyc files
            for _ in range(args.runs):
                for name, command in commands.items():
                    samples[name].append(timed(command, env, cwd))
        print(f"median of {args.runs} cold starts (wall clock, fresh process each)")
        baseline = statistics.median(samples["python -c pass (baseline)"])
        for name, values in samples.items():
            median = statistics.median(values)
            goal = "  (goal < 0.300 s)" if name.startswith("patcode") else ""
            print(f"  {name:28s} {median:6.3f} s   min {min(values):6.3f} s   over baseline {median - baseline:6.3f} s{goal}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
