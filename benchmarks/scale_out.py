"""Scale-out: several ``patcode serve`` instances sharing one Redis (``LLM_STATE_URL``), under wrk.

Everything runs on loopback, in a temporary folder, and is stopped at the end (Ctrl-C and SIGTERM too):

- the fast fake provider (``_fast_provider.py``, as in ``gateway.py``);
- a private ``redis-server`` (``tests/redis_server.py``: a free port, a random password, no snapshots);
- three **redis-backed** ``patcode serve`` instances (``LLM_STATE_URL`` at that Redis, one ``LLM_STATE_PREFIX``
  for the run) and three **in-process** ones (no ``LLM_STATE_URL``), each with its own ``PATCODE_HOME``, only the
  openai plugin's route (``LLM_FALLBACK_ORDER=openai``) pointed at the fake, and ``OPENAI_RPM=1000000``: the
  requests-per-minute budget is checked on every request (with Redis: the ADMIT script, one ``EVALSHA``) but
  never runs out.

Figures, the median of ``--runs`` short rounds (targets interleaved within a round):

1. requests/s through 1, 2 and 3 instances, redis-backed and in-process: one wrk process per instance, all
   started together, the ``--connections`` split between them (wrk targets one URL), their requests/s added;
2. what Redis-backed limits add on one instance: p50/p99 at 1 connection and requests/s at ``--connections``,
   redis-backed minus in-process;
3. Redis round trips per request: ``--requests`` chat completions sent by a plain Python client, round-robin
   over the three redis-backed instances, with ``MONITOR`` on: commands sent by the instances (``[db ip:port]``)
   are round trips, commands run inside a script (``[db lua]``) are not, a ``MULTI … EXEC`` block counts once.
   ``INFO commandstats`` before and after gives the same run per command (script-internal calls included, as
   Redis counts them). Goal: at most 2 round trips per request.

On a 2-core machine wrk, the fake provider, Redis and every instance share the same two cores: more instances
cannot add capacity, they only split it (the machine's CPU use during each run is printed to show it).

wrk must be installed (Debian: ``apt-get install -y wrk``), and ``redis-server`` (``scripts/install-test-servers``)::

    .venv-test/bin/python benchmarks/scale_out.py [--seconds 3] [--runs 3] [--connections 16] [--requests 2000]
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import gateway as gw  # noqa: E402  (benchmarks/gateway.py: the fake provider, patcode serve, the wrk script)
from redis_server import RedisServer, redis_binary  # noqa: E402  (tests/redis_server.py: a private Redis)

RPM = "1000000"
INSTANCES = (1, 2, 3)
MONITOR_LINE = re.compile(r'^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')


# ---------------------------------------------------------------- processes


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM stops like Ctrl-C."""
    raise KeyboardInterrupt


def start_instance(
    patcode: str, provider_url: str, token: str, workdir: Path, name: str, state_url: str | None, prefix: str
) -> gw.PatcodeServe:
    folder = workdir / name
    folder.mkdir()
    server = gw.PatcodeServe(patcode, provider_url, token, str(folder))
    server.name = f"patcode serve ({name})"
    server.env["OPENAI_RPM"] = RPM
    if state_url:
        server.env["LLM_STATE_URL"] = state_url
        server.env["LLM_STATE_PREFIX"] = prefix
    return server


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


# ---------------------------------------------------------------- wrk


@dataclass
class Run:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: float  # the machine's CPU use during the run, 0..1 of all cores


@dataclass
class Target:
    name: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.runs)

    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


def wrk_together(binary: str, script: str, urls: list[str], connections: int, seconds: float) -> Run:
    """One wrk per URL, started together, ``connections`` split between them; requests/s added up.

    p50/p99: the worst of the wrk processes' (each sees its own instance only).
    """
    share = [connections // len(urls) + (1 if i < connections % len(urls) else 0) for i in range(len(urls))]
    processes: list[subprocess.Popen[str]] = []
    busy0, total0 = cpu_busy()
    try:
        for url, c in zip(urls, share, strict=True):
            command = [binary, "-t", "1", "-c", str(max(1, c)), "-d", f"{max(1, round(seconds))}s",
                       "--timeout", "10s", "-s", script, url + gw.CHAT_PATH]  # fmt: skip
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=seconds + 60) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    busy1, total1 = cpu_busy()
    figures = []
    for p, (out, err) in zip(processes, outputs, strict=True):
        line = next((x for x in out.splitlines() if x.startswith("WRK-JSON ")), None)
        if p.returncode != 0 or line is None:
            sys.exit(f"wrk failed ({p.returncode}): {err or out}")
        figures.append(json.loads(line.removeprefix("WRK-JSON ")))
    return Run(
        requests=sum(f["requests"] for f in figures),
        rps=sum(f["requests"] / (f["duration_us"] / 1e6) for f in figures),
        p50_ms=max(f["p50_us"] for f in figures) / 1000,
        p99_ms=max(f["p99_us"] for f in figures) / 1000,
        errors=sum(f[k] for f in figures for k in ("connect", "read", "write", "status", "timeout")),
        cpu=(busy1 - busy0) / max(1, total1 - total0),
    )


# ---------------------------------------------------------------- Redis: counting round trips


class Monitor:
    """``MONITOR`` on a raw socket, in a thread: every command Redis runs, with who sent it (``lua``: a script)."""

    def __init__(self, port: int, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"AUTH {password}\r\nMONITOR\r\n".encode())
        self.lines: list[str] = []
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if not self.ready.wait(5):
            raise RuntimeError("MONITOR did not start")

    def _read(self) -> None:
        self.sock.settimeout(0.2)
        buffer = b""
        oks = 0
        while not self.stop_event.is_set():
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                if line == "+OK" and oks < 2:
                    oks += 1
                    if oks == 2:
                        self.ready.set()
                    continue
                if line.startswith("-"):
                    self.lines.append(line)
                    self.ready.set()
                    continue
                self.lines.append(line)

    def close(self) -> list[str]:
        self.stop_event.set()
        self.thread.join(2)
        self.sock.close()
        return self.lines


@dataclass
class RoundTrips:
    requests: int
    answered: int
    round_trips: int  # commands from the instances, a MULTI … EXEC block counted once
    from_clients: Counter[str]  # command → calls, sent by the instances
    in_scripts: Counter[str]  # command → calls, run inside scripts
    commandstats: dict[str, int]  # INFO commandstats: command → calls (script-internal included)
    total_commands: int  # INFO stats total_commands_processed (script-internal included), our own removed
    idle_per_s: float  # commands per second with no requests at all (background work)
    errors: list[str]


def commandstats(client: Any) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in client.info("commandstats").items()}


def send_requests(urls: list[str], token: str, count: int, threads_per_url: int = 2) -> int:
    """``count`` chat completions, round-robin over ``urls`` (keep-alive connections); how many answered 200."""
    lock = threading.Lock()
    next_one = iter(range(count))
    answered = [0]

    def worker(url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        try:
            while True:
                with lock:
                    if next(next_one, None) is None:
                        return
                connection.request("POST", gw.CHAT_PATH, body=gw.BODY, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    with lock:
                        answered[0] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=(url,)) for url in urls for _ in range(threads_per_url)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return answered[0]


def count_round_trips(redis: RedisServer, urls: list[str], token: str, count: int) -> RoundTrips:
    client = redis.client()
    try:
        # Background traffic first: two quiet seconds (INFO itself is one command each time).
        before = int(client.info("stats")["total_commands_processed"])
        time.sleep(2.0)
        idle = int(client.info("stats")["total_commands_processed"]) - before - 1

        stats_before = commandstats(client)
        total_before = int(client.info("stats")["total_commands_processed"])
        monitor = Monitor(redis.port, redis.password)
        answered = send_requests(urls, token, count)
        time.sleep(0.3)  # work an answer leaves behind (fire-and-forget writes) lands too
        lines = monitor.close()
        total_after = int(client.info("stats")["total_commands_processed"])
        stats_after = commandstats(client)
    finally:
        client.close()

    from_clients: Counter[str] = Counter()
    in_scripts: Counter[str] = Counter()
    errors: list[str] = []
    round_trips = 0
    in_multi: set[str] = set()
    for line in lines:
        found = MONITOR_LINE.match(line)
        if not found:
            if line.startswith("-"):
                errors.append(line)
            continue
        who, command = found.group(1), found.group(2).upper()
        if who == "lua":
            in_scripts[command] += 1
            continue
        from_clients[command] += 1
        if command == "MULTI":
            in_multi.add(who)
            round_trips += 1
        elif command in ("EXEC", "DISCARD"):
            in_multi.discard(who)
        elif who not in in_multi:
            round_trips += 1
    diff = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in stats_after}
    # Ours, not the instances': the INFO that took the first snapshot (counted once it has run), one INFO stats
    # on each side of the run, and the MONITOR connection's AUTH and MONITOR.
    for ours, calls in (("info", 3), ("auth", 1), ("monitor", 1)):
        diff[ours] = diff.get(ours, 0) - calls
    diff = {k: v for k, v in diff.items() if v > 0}
    return RoundTrips(
        requests=count,
        answered=answered,
        round_trips=round_trips,
        from_clients=from_clients,
        in_scripts=in_scripts,
        commandstats=diff,
        total_commands=total_after - total_before - 3,  # ours: INFO, AUTH, MONITOR
        idle_per_s=idle / 2.0,
        errors=errors,
    )


# ---------------------------------------------------------------- report


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + row[0].ljust(widths[0]) + "".join("  " + cell.rjust(widths[i]) for i, cell in enumerate(row[1:], 1)))


def report(targets: dict[str, Target], connections: int, trips: RoundTrips, log_problems: list[str]) -> bool:
    print()
    print(f"Medians of {len(targets['redis x1'].runs)} rounds; {connections} connections in all, split over the "
          f"instances (one wrk each); CPU = the machine's use during the run ({os.cpu_count()} cores).")  # fmt: skip
    rows: list[tuple[str, ...]] = [("", "in-process", "CPU", "redis-backed", "CPU", "redis vs in-process")]
    base = {kind: targets[f"{kind} x1"].median("rps") for kind in ("local", "redis")}
    for n in INSTANCES:
        local, redis = targets[f"local x{n}"], targets[f"redis x{n}"]
        lr, rr = local.median("rps"), redis.median("rps")
        rows.append((
            f"requests/s, {n} instance{'s' if n > 1 else ''}",
            f"{fmt(lr)} ({lr / base['local']:.2f}x)", f"{local.median('cpu') * 100:.0f}%",
            f"{fmt(rr)} ({rr / base['redis']:.2f}x)", f"{redis.median('cpu') * 100:.0f}%",
            f"{(rr / lr - 1) * 100:+.1f}%",
        ))  # fmt: skip
    for n in INSTANCES:
        local, redis = targets[f"local x{n}"], targets[f"redis x{n}"]
        rows.append(
            (
                f"p99 at {connections} conn., {n} inst. (ms)",
                fmt(local.median("p99_ms"), 2),
                "",
                fmt(redis.median("p99_ms"), 2),
                "",
                f"{redis.median('p99_ms') - local.median('p99_ms'):+.2f} ms",
            )
        )
    l1, r1 = targets["local c1"], targets["redis c1"]
    for label, attribute in (("p50 at 1 conn., 1 inst. (ms)", "p50_ms"), ("p99 at 1 conn., 1 inst. (ms)", "p99_ms")):
        lv, rv = l1.median(attribute), r1.median(attribute)
        rows.append((label, fmt(lv, 3), "", fmt(rv, 3), "", f"{rv - lv:+.3f} ms added"))
    rows.append(
        (
            "requests/s at 1 conn., 1 inst.",
            fmt(l1.median("rps")),
            "",
            fmt(r1.median("rps")),
            "",
            f"{(r1.median('rps') / l1.median('rps') - 1) * 100:+.1f}%",
        )
    )
    table(rows)

    per_request = trips.round_trips / max(1, trips.answered)
    print()
    print(
        f"Redis per request ({trips.requests} sent round-robin to the 3 redis-backed instances, "
        f"{trips.answered} answered 200; background with no requests: {trips.idle_per_s:.1f} commands/s):"
    )
    answered = max(1, trips.answered)
    rows = [("command (MONITOR)", "sent by instances", "per request", "inside scripts", "per request", "INFO commandstats")]
    for command in sorted(set(trips.from_clients) | set(trips.in_scripts) | {k.upper() for k in trips.commandstats}):
        sent, inside = trips.from_clients.get(command, 0), trips.in_scripts.get(command, 0)
        rows.append(
            (
                command.lower(),
                fmt(sent),
                f"{sent / answered:.3f}",
                fmt(inside),
                f"{inside / answered:.3f}",
                fmt(trips.commandstats.get(command.lower(), 0)),
            )
        )
    rows.append(("round trips (MULTI…EXEC once)", fmt(trips.round_trips), f"{per_request:.3f}", "", "", ""))
    rows.append(
        ("INFO total_commands_processed", "", "", "", f"{trips.total_commands / answered:.3f}", fmt(trips.total_commands))
    )
    table(rows)
    for error in trips.errors[:5]:
        print(f"  MONITOR saw an error: {error}")

    checks = [
        (f"Redis round trips per request <= 2: {per_request:.3f}", per_request <= 2.0),
        (f"every request answered: {trips.answered}/{trips.requests}", trips.answered == trips.requests),
    ]
    evalsha = trips.from_clients.get("EVALSHA", 0) + trips.from_clients.get("EVAL", 0)
    checks.append((f"the ADMIT script ran for each request (EVALSHA/EVAL {evalsha} for {trips.answered})",
                   evalsha >= trips.answered))  # fmt: skip
    gw.print_goals(checks)
    for target in targets.values():
        if target.errors():
            print(f"  WARNING: {target.name} had {target.errors()} wrk errors (non-2xx, timeouts, resets): suspect figures")
    for problem in log_problems:
        print(f"  WARNING: {problem}")
    return all(ok for _, ok in checks)


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of each wrk run (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians are quoted (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections in all (default 16)")
    parser.add_argument("--requests", type=int, default=2000, help="requests for the round-trip count (default 2000)")
    parser.add_argument("--patcode", metavar="PATH", default=str(Path(sys.executable).with_name("patcode")),
                        help="the patcode executable (default: the one beside this Python)")  # fmt: skip
    args = parser.parse_args()
    wrk_binary = gw.require_wrk()
    if redis_binary() is None:
        sys.exit("redis-server is not installed: run scripts/install-test-servers (Debian's redis-server package)")
    if not Path(args.patcode).exists():
        sys.exit(f"no patcode executable at {args.patcode}")
    if args.connections < max(INSTANCES):
        sys.exit(f"--connections must be at least {max(INSTANCES)}")
    signal.signal(signal.SIGTERM, on_sigterm)

    busy0, total0 = cpu_busy()
    time.sleep(1.0)
    busy1, total1 = cpu_busy()
    idle_cpu = (busy1 - busy0) / max(1, total1 - total0)
    print(
        f"machine CPU use before starting anything: {idle_cpu * 100:.0f}% of {os.cpu_count()} cores"
        + ("  (other work is running: the figures below share the cores with it)" if idle_cpu > 0.1 else "")
    )
    workdir = Path(tempfile.mkdtemp(prefix="patcode-scale-out-"))
    token = "sk-bench-" + secrets.token_hex(24)
    script = str(workdir / "post.lua")
    Path(script).write_text(gw.LUA % {"body": gw.BODY, "token": token})
    prefix = "scaleout-" + secrets.token_hex(4)
    servers: list[gw.Server] = []
    redis: RedisServer | None = None
    try:
        provider = gw.FastProvider()
        servers.append(provider)
        provider.start()
        redis = RedisServer()
        print(f"fake provider at {provider.url}; redis-server {redis_binary()} on 127.0.0.1:{redis.port} "
              f"(prefix {prefix}); scratch dir {workdir}", flush=True)  # fmt: skip

        shared: list[gw.PatcodeServe] = []
        local: list[gw.PatcodeServe] = []
        for i in INSTANCES:
            for kind, group, url in (("redis", shared, redis.url()), ("local", local, None)):
                server = start_instance(args.patcode, provider.url, token, workdir, f"{kind}{i}", url, prefix)
                servers.append(server)
                server.start()
                gw.probe_chat(server.url, token)
                group.append(server)
        print("redis-backed: " + ", ".join(s.url for s in shared) + "; in-process: " + ", ".join(s.url for s in local))

        targets: dict[str, Target] = {}
        plan: list[tuple[str, list[str], int]] = []
        for n in INSTANCES:
            plan.append((f"local x{n}", [s.url for s in local[:n]], args.connections))
            plan.append((f"redis x{n}", [s.url for s in shared[:n]], args.connections))
        plan.append(("local c1", [local[0].url], 1))
        plan.append(("redis c1", [shared[0].url], 1))
        for name, _, _ in plan:
            targets[name] = Target(name)

        client = redis.client()
        evalsha_before = commandstats(client)
        expected = 0
        # Warm-up (each instance: connections, the script loaded), then the rounds, targets interleaved.
        for server in shared + local:
            run = wrk_together(wrk_binary, script, [server.url], 4, 1)
            expected += run.requests if server in shared else 0
        for round_ in range(1, args.runs + 1):
            for name, urls, connections in plan:
                run = wrk_together(wrk_binary, script, urls, connections, args.seconds)
                targets[name].runs.append(run)
                if name.startswith("redis"):
                    expected += run.requests
                print(f"  round {round_} {name:<9} c={connections:<3} {run.rps:8,.0f}/s  p50 {run.p50_ms:7.3f}  "
                      f"p99 {run.p99_ms:7.3f} ms  cpu {run.cpu * 100:3.0f}%"
                      + (f"  ({run.errors} errors)" if run.errors else ""), flush=True)  # fmt: skip
        evalsha_after = commandstats(client)
        client.close()

        # Did the redis-backed instances really use Redis all along (not their local fallback after a timeout)?
        problems = []
        admitted = sum(evalsha_after.get(k, 0) - evalsha_before.get(k, 0) for k in ("evalsha", "eval"))
        if admitted < expected:
            problems.append(f"Redis ran the ADMIT script {admitted:,} times for {expected:,} redis-backed requests: "
                            "some went to the local fallback")  # fmt: skip
        for server in shared + local:
            text = Path(server.log_path).read_text(errors="replace") if Path(server.log_path).exists() else ""
            for marker in ("state_redis_down", "state_redis_back", "Traceback"):
                if marker in text:
                    problems.append(f"{server.name}: {marker} in {server.log_path}")
        print(f"ADMIT scripts run during the load: {admitted:,} for {expected:,} redis-backed requests sent")

        trips = count_round_trips(redis, [s.url for s in shared], token, args.requests)
        ok = report(targets, args.connections, trips, problems)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        ok = False
    finally:
        for server in reversed(servers):
            server.stop()
        if redis is not None:
            redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
