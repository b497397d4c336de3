"""The gateway's cost: ``patcode serve`` vs the provider direct (and vs LiteLLM's proxy), under wrk.

A minimal loopback provider (``_fast_provider.py``, a separate process that
answers a fixed ``chat.completion`` with usage at tens of thousands of
requests a second) stands in for the provider. wrk sends the same
``POST /v1/chat/completions`` body ``{"model":"openai","messages":[...]}``
with the same Bearer token to:

- **direct**: the fake provider itself (the baseline: what any client gets);
- **patcode**: ``patcode serve --port 0`` with only the openai plugin's route
  (``LLM_FALLBACK_ORDER=openai``) pointed at the fake, ``PATCODE_SERVER_TOKEN``
  set, its defaults otherwise (usage store on, in a temporary ``PATCODE_HOME``);
- **litellm** (with ``--litellm PATH``): LiteLLM's proxy, one worker, one
  ``openai/`` model at the fake, ``LITELLM_MASTER_KEY`` set.

Figures, the median of ``--runs`` short wrk runs each (targets interleaved,
so the noise of this shared 2-core machine hits them alike): requests/s at 1,
16 and 64 connections; p50/p99 at 1 connection and what the gateway adds
(gateway minus direct); start-up (launch to the first 200 on the health
route, the median of ``--starts`` starts); RSS of the server after the load
(VmRSS and the peak VmHWM from /proc, its child processes added). Goals:
added p50 < 1 ms, requests/s >= 10x LiteLLM's at each concurrency, start
< 1 s, RSS < 100 MiB. Without ``--litellm`` the LiteLLM figures are the
issue's (LiteLLM proxy 1.110.2, one worker, on this kind of machine).

wrk must be installed (Debian: ``apt-get update && apt-get install -y wrk``).
LiteLLM goes in a venv of its own, outside the repository, e.g.::

    python3 -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.110.2'

When the registry lacks ``litellm-proxy==1.110.2``, which that extra pins,
the proxy (its code ships in ``litellm`` itself) runs with the extra's other
requirements and the modules ``python -c "import litellm.proxy.proxy_server"``
reports missing::

    /tmp/litellm-venv/bin/pip install litellm==1.110.2 gunicorn uvicorn granian uvloop fastapi \
        starlette backoff pyyaml rq websockets orjson apscheduler PyJWT semver python-multipart \
        Expression fastapi-sso mcp soundfile

    .venv-test/bin/python benchmarks/gateway.py [--seconds 3] [--runs 3] [--starts 5] \\
        [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = '{"model":"openai","messages":[{"role":"user","content":"hola"}]}'
CHAT_PATH = "/v1/chat/completions"
CONCURRENCIES = (1, 16, 64)
URL_LINE = re.compile(r"http://\S+:\d+")
# LiteLLM proxy 1.110.2, one worker, as measured in the issue.
ISSUE_LITELLM_RPS = {1: 76.0, 16: 103.0, 64: 92.0}
ISSUE_LITELLM_ADDED_P50_MS = 12.6
ISSUE_LITELLM_RSS_MIB = 385.0
ISSUE_LITELLM_START_S = 6.8
# Provider settings cleared so only the openai route (at the fake) is configured.
PROVIDER_ENV = re.compile(r"^(GROQ|OLLAMA|OPENAI|ANTHROPIC|GEMINI|LOCAL|LLM)_|^PATCODE_")

LUA = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,'
    .. '"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(base: str, method: str, path: str, token: str | None = None, body: str | None = None) -> int:
    """The status of one request, or 0 when the server does not answer (yet)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def probe_chat(base: str, token: str) -> dict[str, str]:
    """One chat completion through ``base``; its X-PatCode-* headers. Exits with the body on a non-200."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(
            "POST",
            CHAT_PATH,
            body=BODY,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    if response.status != 200:
        sys.exit(f"{base}{CHAT_PATH} answered {response.status}: {payload[:500]!r}")
    answer = json.loads(payload)
    if answer.get("object") != "chat.completion" or not answer.get("choices"):
        sys.exit(f"{base}{CHAT_PATH} answered something else than a chat.completion: {payload[:500]!r}")
    return {k: v for k, v in response.getheaders() if k.lower().startswith("x-patcode-")}


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def rss_mib(pid: int) -> tuple[float, float, int]:
    """(VmRSS, VmHWM) in MiB, summed over ``pid`` and its descendants, and how many processes that was."""
    rss = hwm = 0
    pids = process_tree(pid)
    for one in pids:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm += int(line.split()[1])
    return rss / 1024, hwm / 1024, len(pids)


# ---------------------------------------------------------------- servers


class Server:
    """A server process in its own process group; ``url`` once it is up."""

    name = "server"
    health_path = "/healthz"

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.log_path = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def died(self, what: str) -> None:
        tail = ""
        if self.log_path and Path(self.log_path).exists():
            tail = "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-25:])
        self.stop()
        sys.exit(f"{self.name}: {what}\n--- last lines of {self.log_path} ---\n{tail}")

    def start(self) -> float:
        """Launch; the seconds to the first 200 on the health route."""
        raise NotImplementedError

    def wait_healthy(self, started: float, timeout: float) -> float:
        """Seconds from ``started`` to the first 200 on the health route."""
        while True:
            if http_status(self.url, "GET", self.health_path) == 200:
                return time.perf_counter() - started
            if self.process is not None and self.process.poll() is not None:
                self.died(f"exited with {self.process.returncode} before answering {self.health_path}")
            if time.perf_counter() - started > timeout:
                self.died(f"no 200 on {self.health_path} within {timeout:.0f} s")
            time.sleep(0.002)


class FastProvider(Server):
    name = "fake provider"

    def start(self) -> float:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_fast_provider.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("LISTENING "):
            self.died(f"did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return time.perf_counter() - started


class PatcodeServe(Server):
    name = "patcode serve"

    def __init__(self, executable: str, provider_url: str, token: str, workdir: str) -> None:
        super().__init__()
        self.executable = executable
        self.workdir = workdir
        self.log_path = str(Path(workdir) / "serve.log")
        env = {k: v for k, v in os.environ.items() if not PROVIDER_ENV.match(k)}
        env.update(
            {
                "LLM_FALLBACK_ORDER": "openai",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"{provider_url}/v1",
                "PATCODE_HOME": str(Path(workdir) / "home"),
                "PATCODE_SERVER_TOKEN": token,
            }
        )
        self.env = env
        self.url_seen = 0.0

    def start(self) -> float:
        """Launch; returns the seconds to the first 200 on /healthz."""
        url_ready = threading.Event()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [self.executable, "serve", "--port", "0"],
            cwd=self.workdir,  # no .env there: the environment above is the whole configuration
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "a"),  # noqa: SIM115 - the child keeps it
            text=True,
            start_new_session=True,
        )

        def drain() -> None:  # read the URL line, then keep the pipe empty
            assert self.process is not None and self.process.stdout is not None
            with open(self.log_path, "a") as log:
                for line in self.process.stdout:
                    log.write(line)
                    log.flush()
                    found = URL_LINE.search(line)
                    if found and not url_ready.is_set():
                        self.url = found.group(0)
                        self.url_seen = time.perf_counter() - started
                        url_ready.set()

        threading.Thread(target=drain, daemon=True).start()
        while not url_ready.wait(0.005):
            if self.process.poll() is not None:
                self.died(f"exited with {self.process.returncode} before printing its URL")
            if time.perf_counter() - started > 60:
                self.died("printed no URL within 60 s")
        return self.wait_healthy(started, 60)


class LiteLLMProxy(Server):
    name = "litellm proxy"
    health_path = "/health/liveliness"

    def __init__(self, executable: str, provider_url: str, token: str, workdir: str) -> None:
        super().__init__()
        self.executable = executable
        self.workdir = workdir
        self.log_path = str(Path(workdir) / "litellm.log")
        config = Path(workdir) / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: openai\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            f"      api_base: {provider_url}/v1\n"
            "      api_key: sk-bench\n"
        )
        self.config = str(config)
        env = {k: v for k, v in os.environ.items() if not PROVIDER_ENV.match(k)}
        env.update(
            {
                "LITELLM_MASTER_KEY": token,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network here: don't wait on fetching it
                "LITELLM_TELEMETRY": "False",
            }
        )
        self.env = env

    def start(self) -> float:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [self.executable, "--config", self.config, "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
            cwd=self.workdir,
            env=self.env,
            stdout=open(self.log_path, "a"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return self.wait_healthy(started, 180)


# ---------------------------------------------------------------- wrk


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Side:
    name: str
    url: str
    runs: dict[int, list[Run]] = field(default_factory=dict)
    starts: list[float] = field(default_factory=list)
    rss: tuple[float, float, int] | None = None

    def rps(self, connections: int) -> float:
        return statistics.median(r.rps for r in self.runs[connections])

    def p50(self, connections: int = 1) -> float:
        return statistics.median(r.p50_ms for r in self.runs[connections])

    def p99(self, connections: int = 1) -> float:
        return statistics.median(r.p99_ms for r in self.runs[connections])

    def errors(self) -> int:
        return sum(r.errors for runs in self.runs.values() for r in runs)


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        sys.exit(
            "wrk is not installed; this benchmark drives the load with it.\n"
            "Debian/Ubuntu: apt-get update && apt-get install -y wrk   (as root), then run this again."
        )
    return found


def wrk(binary: str, script: str, url: str, connections: int, seconds: float) -> Run:
    command = [
        binary, "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", script, url + CHAT_PATH,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in result.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if result.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    figures = json.loads(line.removeprefix("WRK-JSON "))
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        rps=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=errors,
    )


# ---------------------------------------------------------------- report


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def report(sides: dict[str, Side]) -> None:
    direct, patcode = sides["direct"], sides["patcode"]
    litellm = sides.get("litellm")
    assert patcode.rss is not None
    added_p50 = patcode.p50() - direct.p50()
    added_p99 = patcode.p99() - direct.p99()
    start = statistics.median(patcode.starts)
    peak = patcode.rss[1]
    # LiteLLM's figures: measured here, or the issue's.
    if litellm is not None and litellm.rss is not None:
        ll_rps = {c: litellm.rps(c) for c in CONCURRENCIES}
        ll_p50, ll_p99 = fmt(litellm.p50(), 3), fmt(litellm.p99(), 3)
        ll_added_p50, ll_added_p99 = litellm.p50() - direct.p50(), fmt(litellm.p99() - direct.p99(), 3)
        ll_start, ll_rss, ll_peak = statistics.median(litellm.starts), fmt(litellm.rss[0], 1), litellm.rss[1]
        source = "measured here"
    else:
        ll_rps = dict(ISSUE_LITELLM_RPS)
        ll_p50 = ll_p99 = ll_added_p99 = ll_rss = "—"
        ll_added_p50, ll_start, ll_peak = ISSUE_LITELLM_ADDED_P50_MS, ISSUE_LITELLM_START_S, ISSUE_LITELLM_RSS_MIB
        source = "the issue's figures (not measured here)"

    def less(theirs: float, ours: float, digits: int = 0) -> str:
        return f"{theirs / ours:.{digits}f}x less" if ours > 0 else ""

    rows = [("", "direct", "patcode", "litellm", "patcode vs litellm")]
    for c in CONCURRENCIES:
        rows.append((f"requests/s, {c} conn.", fmt(direct.rps(c)), fmt(patcode.rps(c)), fmt(ll_rps[c]),
                     f"{patcode.rps(c) / ll_rps[c]:.1f}x"))  # fmt: skip
    rows += [
        ("p50 at 1 conn. (ms)", fmt(direct.p50(), 3), fmt(patcode.p50(), 3), ll_p50, ""),
        ("p99 at 1 conn. (ms)", fmt(direct.p99(), 3), fmt(patcode.p99(), 3), ll_p99, ""),
        ("added p50 (ms)", "", fmt(added_p50, 3), fmt(ll_added_p50, 3), less(ll_added_p50, added_p50)),
        ("added p99 (ms)", "", fmt(added_p99, 3), ll_added_p99, ""),
        ("start to first 200 (s)", "", fmt(start, 3), fmt(ll_start, 2), less(ll_start, start)),
        ("RSS after load, VmRSS (MiB)", "", fmt(patcode.rss[0], 1), ll_rss, ""),
        ("RSS peak, VmHWM (MiB)", "", fmt(peak, 1), fmt(ll_peak, 1), less(ll_peak, peak, 1)),
    ]
    print()
    print(f"Medians; LiteLLM column: {source}.")
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  " + row[0].ljust(widths[0]) + "".join("  " + cell.rjust(widths[i]) for i, cell in enumerate(row[1:], 1)))

    checks = [(f"added p50 < 1 ms: {added_p50:.3f} ms", added_p50 < 1.0)]
    for c in CONCURRENCIES:
        ratio = patcode.rps(c) / ll_rps[c]
        checks.append((f"requests/s >= 10x LiteLLM's at {c} conn.: {ratio:.1f}x", ratio >= 10))
    checks.append((f"start < 1 s: {start:.3f} s", start < 1.0))
    checks.append((f"RSS < 100 MiB: peak {peak:.1f} MiB", peak < 100.0))
    print_goals(checks)
    for side in sides.values():
        if side.errors():
            print(f"  WARNING: {side.name} had {side.errors()} wrk errors (non-2xx, timeouts, resets): its figures are suspect")


def print_goals(checks: list[tuple[str, bool]]) -> None:
    """The goal check: one ``ok``/``NO`` line per goal."""
    print()
    print("Goals:")
    for text, ok in checks:
        print(f"  {'ok' if ok else 'NO'}  {text}")


# ---------------------------------------------------------------- main


def timed_starts(factory: Callable[[], Server], count: int, started: list[Server]) -> tuple[list[float], Server]:
    """Start ``count`` servers one after the other (each stopped but the last); their start times and the last."""
    starts: list[float] = []
    for i in range(count):
        server = factory()
        started.append(server)
        starts.append(server.start())
        if i < count - 1:
            server.stop()
    return starts, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of each wrk run (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per target and concurrency; medians are quoted (default 3)")
    parser.add_argument("--starts", type=int, default=5, help="server starts timed; the median is quoted (default 5)")
    parser.add_argument("--litellm", metavar="PATH", help="LiteLLM's `litellm` executable, to measure its proxy too")
    parser.add_argument("--patcode", metavar="PATH", default=str(Path(sys.executable).with_name("patcode")),
                        help="the patcode executable (default: the one beside this Python)")  # fmt: skip
    args = parser.parse_args()
    wrk_binary = require_wrk()
    if not Path(args.patcode).exists():
        sys.exit(f"no patcode executable at {args.patcode}")
    if args.litellm and not Path(args.litellm).exists():
        sys.exit(f"no litellm executable at {args.litellm}")

    workdir = tempfile.mkdtemp(prefix="patcode-gateway-bench-")
    token = "sk-bench-" + secrets.token_hex(24)
    script = str(Path(workdir) / "post.lua")
    Path(script).write_text(LUA % {"body": BODY, "token": token})
    provider = FastProvider()
    servers: list[Server] = [provider]
    try:
        provider.start()
        print(f"fake provider at {provider.url} (pid {provider.pid}); scratch dir {workdir}")

        patcode_starts, patcode = timed_starts(
            lambda: PatcodeServe(args.patcode, provider.url, token, workdir), max(1, args.starts), servers
        )
        headers = probe_chat(patcode.url, token)
        print(f"patcode serve at {patcode.url} (pid {patcode.pid}); start {statistics.median(patcode_starts):.3f} s "
              f"(each: {', '.join(f'{s:.3f}' for s in patcode_starts)}); answer headers {headers}")  # fmt: skip
        sides = {
            "direct": Side("direct", provider.url),
            "patcode": Side("patcode", patcode.url, starts=patcode_starts),
        }
        litellm = None
        if args.litellm:
            litellm_starts, litellm = timed_starts(
                lambda: LiteLLMProxy(args.litellm, provider.url, token, workdir), max(1, args.starts), servers
            )
            probe_chat(litellm.url, token)
            print(f"litellm proxy at {litellm.url} (pid {litellm.pid}); start {statistics.median(litellm_starts):.2f} s "
                  f"(each: {', '.join(f'{s:.2f}' for s in litellm_starts)})")  # fmt: skip
            sides["litellm"] = Side("litellm", litellm.url, starts=litellm_starts)

        # Warm-up, then --runs rounds; within a round, each concurrency, each target in turn.
        for side in sides.values():
            wrk(wrk_binary, script, side.url, 16, 1)
        for round_ in range(1, args.runs + 1):
            for c in CONCURRENCIES:
                line = []
                for side in sides.values():
                    run = wrk(wrk_binary, script, side.url, c, args.seconds)
                    side.runs.setdefault(c, []).append(run)
                    line.append(f"{side.name} {run.rps:8,.0f}/s p50 {run.p50_ms:7.3f} p99 {run.p99_ms:7.3f} ms"
                                + (f" ({run.errors} errors)" if run.errors else ""))  # fmt: skip
                print(f"  round {round_} c={c:<2}  " + "  |  ".join(line), flush=True)
        sides["patcode"].rss = rss_mib(patcode.pid)
        if litellm is not None:
            sides["litellm"].rss = rss_mib(litellm.pid)
        for side_name, server in (("patcode", patcode), ("litellm", litellm)):
            if server is not None:
                rss, hwm, count = sides[side_name].rss  # type: ignore[misc]
                print(f"{server.name} RSS after load: VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB ({count} process(es))")
        report(sides)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
