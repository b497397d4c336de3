"""The usage store under stress: private files, a writer that never dies, full disks, racing first runs,
read-only homes, bounded memory, a cache scoped by endpoint and key, JSON that is JSON.

Tests that need a real failure get a real one: a second user who cannot write, a file-size limit that
makes SQLite's writes fail with EFBIG, eight processes started at the same instant.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.server_process import FakeProviderServer
from helpers import FakeProvider, manager_with

from patcode_core.accounting import store as store_module
from patcode_core.accounting.history import ProviderUsage, cache_summary, summarize
from patcode_core.accounting.prices import PriceBook
from patcode_core.accounting.store import MEMORY_ROWS, Attempt, UsageStore
from patcode_core.accounting.usage import UsageLog, cache_scope
from patcode_core.errors import ConfigError, PatCodeError
from patcode_core.safe_text import without_surrogates
from patcode_core.types import CachedAnswer, CompletionRequest, Message, ProviderReply, Usage

OTHER_USER = 65534  # nobody


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clean_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_"))}
    return {**base, "PATCODE_LANG": "es", **extra}


def loopback_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        PATCODE_HOME=str(home),
        GROQ_API_KEY="gsk_store_test_key_000000000",
        GROQ_BASE_URL=f"{url}/openai/v1",
        OPENAI_BASE_URL=f"{url}/v1",
        OLLAMA_BASE_URL=url,
        **extra,
    )


def patcode(args: list[str], env: dict[str, str], cwd: Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patcode_core", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, **options
    )


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("[WARNING]")]


def request(text: str) -> CompletionRequest:
    return CompletionRequest((Message("user", text),), "m1", 0.7, 64)


# -- 1. private files ----------------------------------------------------------

NEW_HOME = """
import os, stat, sys, time
from pathlib import Path
os.umask(0)  # the files must be private by themselves, not thanks to the umask
from patcode_core.paths import history_file
from patcode_core.terminal.repl import _terminal_reader
from patcode_core.accounting.store import Attempt, UsageStore
home = Path(os.environ["PATCODE_HOME"])
store = UsageStore(home / "patcode.db")
store.record(Attempt(time.time(), "alpha", "m1", "success"))
store.flush()  # the -wal and -shm exist while the database is open
_terminal_reader(["alpha"])  # creates the interactive history file
for path in sorted(home.iterdir()) + [home]:
    print(path.name, oct(stat.S_IMODE(path.stat().st_mode)))
store.close()
"""


def test_a_new_home_and_its_files_are_private_even_with_umask_0(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    result = subprocess.run(
        [sys.executable, "-c", NEW_HOME], env=clean_env(PATCODE_HOME=str(home)), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    modes = dict(line.split() for line in result.stdout.splitlines())
    assert modes == {"history": "0o600", "patcode.db": "0o600", "patcode.db-shm": "0o600", "patcode.db-wal": "0o600",
                     "home": "0o700"}
    assert "[WARNING]" not in result.stderr  # nothing was loose, nothing to announce


def test_loose_files_are_tightened_once_with_a_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "old-home"
    home.mkdir()
    UsageStore(home / "patcode.db").close()
    (home / "history").write_text("hola\n")
    for path, loose in ((home, 0o755), (home / "patcode.db", 0o644), (home / "history", 0o644)):
        path.chmod(loose)
    capsys.readouterr()
    from patcode_core.private_files import private_file

    UsageStore(home / "patcode.db").close()
    private_file(home / "history")  # what the interactive session does before opening it
    lines = warnings_in(capsys.readouterr().err)
    assert lines == [
        f"[WARNING] Otros usuarios podían leer {home} (permisos 0755); ahora solo tú (permisos 0700)",
        f"[WARNING] Otros usuarios podían leer {home / 'patcode.db'} (permisos 0644); ahora solo tú (permisos 0600)",
        f"[WARNING] Otros usuarios podían leer {home / 'history'} (permisos 0644); ahora solo tú (permisos 0600)",
    ]
    assert (mode(home), mode(home / "patcode.db"), mode(home / "history")) == (0o700, 0o600, 0o600)
    UsageStore(home / "patcode.db").close()
    private_file(home / "history")
    assert capsys.readouterr().err == ""  # once


def test_a_shared_home_keeps_its_mode_but_not_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "notes.txt").write_text("not PatCode's")
    UsageStore(shared / "patcode.db").close()
    assert (mode(shared), mode(shared / "patcode.db")) == (0o755, 0o600)
    assert "[WARNING]" not in capsys.readouterr().err


# -- 2. the writer never dies ----------------------------------------------------


async def test_lone_surrogates_are_stored_replaced_and_later_rows_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_LOG_CONTENT", "true")
    monkeypatch.setenv("LLM_CACHE", "true")
    alpha = FakeProvider("alpha")
    alpha.behaviour = lambda r: ProviderReply("medio \ud800 fin", model=r.model, finish_reason="stop", usage=Usage(1, 2))
    manager = manager_with(alpha)
    first = await manager.complete("hola")
    again = await manager.complete("hola")  # from the in-memory cache, as the disk will hold it
    assert first.text == "medio \ud800 fin"  # the answer itself is the provider's, untouched
    assert again.cached and again.text == "medio \ufffd fin"
    # The manager refuses such a prompt (the router's caller may not): a request built directly still gets stored.
    manager.usage.attempt("alpha", "m1", "failure", request=request("hola \udc80"), error_kind="timeout")
    alpha.behaviour = lambda r: ProviderReply("sano", model=r.model, finish_reason="stop", usage=Usage(1, 2))
    await manager.complete("después")
    store = manager.usage.store
    store.flush()
    assert store.lost == 0 and store.error is None
    assert store.query("SELECT prompt, answer, cached FROM attempts ORDER BY id") == [
        ("hola", "medio \ufffd fin", 0), ("hola", "medio \ufffd fin", 1), ("hola \ufffd", None, 0), ("después", "sano", 0),
    ]
    assert manager.usage.cached("alpha", request("hola \udc80")) is None  # its cache key is computed, not an error
    await manager.aclose()
    reopened = UsageStore(tmp_path / "patcode-home" / "patcode.db")
    assert [row[0] for row in reopened.query("SELECT text FROM cache ORDER BY created")] == ["medio \ufffd fin", "sano"]
    reopened.close()
    assert "[WARNING]" not in capsys.readouterr().err


def test_safe_text_joins_pairs_and_replaces_lone_surrogates() -> None:
    assert without_surrogates("ok ñ 😀") == "ok ñ 😀"
    assert without_surrogates("\ud83d\ude00") == "😀"  # a pair split in two code units is one character again
    assert without_surrogates("a\ud800b\udfffc") == "a\ufffdb\ufffdc"


def test_the_writer_survives_any_failure_and_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = UsageLog(tmp_path / "patcode.db", PriceBook({}, {}))
    log.attempt("alpha", "m1", "success", usage=Usage(1, 1))
    log.attempt("alpha", "m1", "success", usage=Usage(2**70, 1))  # SQLite refuses an integer this large
    log.attempt("alpha", "m1", "success", usage=Usage(3, 1))
    store = log.store
    store.flush()
    assert store.lost == 1 and "OverflowError" in (store.error or "")
    assert [row[0] for row in store.query("SELECT input_tokens FROM attempts ORDER BY id")] == [1, 3]  # its batch-mates kept
    real_insert, real_drain = store._insert, store._drain
    bugs = iter([RuntimeError("an unforeseen bug"), RuntimeError("the same bug, row by row")])
    drain_bugs = iter([ValueError("a bug outside any batch")])

    def insert_with_a_bug(batch: object) -> None:
        for bug in bugs:
            raise bug
        real_insert(batch)  # type: ignore[arg-type]

    def drain_with_a_bug() -> None:
        for bug in drain_bugs:
            raise bug
        real_drain()

    store._insert = insert_with_a_bug  # type: ignore[method-assign]
    log.attempt("alpha", "m1", "success", usage=Usage(4, 1))  # its batch fails, then the row alone fails too
    store.flush()
    assert store._writer.is_alive() and store.lost == 2
    store._drain = drain_with_a_bug  # type: ignore[method-assign]
    log.attempt("alpha", "m1", "success", usage=Usage(5, 1))  # queued while the writer trips once; written after
    deadline = time.monotonic() + 30
    while "ValueError" not in (store.error or "") and time.monotonic() < deadline:
        time.sleep(0.01)  # the writer wakes on its own every WRITE_INTERVAL and trips
    assert store._writer.is_alive() and "ValueError" in (store.error or "")
    log.attempt("alpha", "m1", "success", usage=Usage(6, 1))
    log.close()
    assert not store._writer.is_alive() and store.lost == 2  # stopped by close(), never by a failure
    reopened = UsageStore(tmp_path / "patcode.db")
    assert [row[0] for row in reopened.query("SELECT input_tokens FROM attempts ORDER BY id")] == [1, 3, 5, 6]
    reopened.close()
    lines = warnings_in(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"[WARNING] No se pudo escribir en la base de historial {tmp_path / 'patcode.db'} (OverflowError")
    assert "registro(s) sin guardar. PatCode sigue respondiendo" in lines[0]


# -- 3. a row that cannot be written is reported -----------------------------------


def _file_size_limit(limit: int) -> None:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_chat_whose_row_cannot_be_written_warns_once(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    home = tmp_path / "patcode-home"
    UsageStore(home / "patcode.db").close()  # an existing database: opening it writes nothing
    env = loopback_env(provider_server.url, home, LLM_LOG_CONTENT="true")
    prompt = "x" * 100_000  # with its answer, far more than the limit once in the WAL; the 32 KiB -shm fits
    result = patcode(["chat", prompt], env, tmp_path, preexec_fn=lambda: _file_size_limit(64 * 1024))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("api says: xxx")
    lines = warnings_in(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"[WARNING] No se pudo escribir en la base de historial {home / 'patcode.db'} (OperationalError: ")
    assert "1 registro(s) sin guardar" in lines[0] and f"revisa el espacio libre y los permisos de {home}" in lines[0]
    assert patcode(["chat", "hola"], env, tmp_path).returncode == 0  # without the limit the next row is stored
    check = UsageStore(home / "patcode.db")
    assert check.query("SELECT prompt FROM attempts") == [("hola",)]
    check.close()


# -- 4. first runs racing in the migration -------------------------------------------

RACER = """
import sys, time
from pathlib import Path
from patcode_core.accounting.prices import PriceBook
from patcode_core.types import Usage
from patcode_core.accounting.usage import UsageLog
home, name, rows, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
(go.parent / f"ready-{name}").touch()
while not go.exists():
    time.sleep(0.001)
log = UsageLog(home / "patcode.db", PriceBook({}, {}), on_unavailable=lambda reason: print("UNAVAILABLE", reason))
for index in range(rows):
    log.attempt(name, "m1", "success", usage=Usage(index, 1))
log.close()
"""


def test_eight_first_runs_store_every_row(tmp_path: Path) -> None:
    home, go = tmp_path / "empty-home", tmp_path / "go"
    racers = [
        subprocess.Popen([sys.executable, "-c", RACER, str(home), f"p{index}", "200", str(go)], env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(8)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)  # every interpreter started, its imports done, waiting for the word
    go.touch()
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0 and out == "" and "[WARNING]" not in err, (out, err)
    store = UsageStore(home / "patcode.db")
    assert store.query("SELECT provider, COUNT(*) FROM attempts GROUP BY provider ORDER BY provider") == [
        (f"p{index}", 200) for index in range(8)
    ]
    store.close()


def test_a_migration_rereads_the_version_inside_its_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "patcode.db"
    UsageStore(path).close()
    stale = sqlite3.connect(path, isolation_level=None)
    real_version = store_module._version
    reads = iter([0])  # what this process read just before another one migrated

    def stale_first(connection: sqlite3.Connection) -> int:
        for version in reads:
            return version
        return real_version(connection)

    monkeypatch.setattr(store_module, "_version", stale_first)
    assert store_module.migrate(stale) == store_module.SCHEMA_VERSION  # up to date inside the transaction: nothing run
    stale.close()


# -- 5. a read-only home ------------------------------------------------------------


def as_other_user(command: list[str]) -> list[str]:
    """``command`` run by a user who cannot write the test's files (root ignores permissions).

    When the tests run as root, ``setpriv`` switches to uid 65534 right at ``exec`` (the interpreter
    may live where only root can look, as pyenv's in /root); the program itself then runs with no
    capability, like any user.
    """
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no way to be a user without write permission")
    return [setpriv, f"--reuid={OTHER_USER}", f"--regid={OTHER_USER}", "--clear-groups", *command]


@pytest.fixture
def read_only_home() -> Iterator[Path]:
    """A PATCODE_HOME holding a database with three rows and a cached answer, then made read-only."""
    base = Path(tempfile.mkdtemp(prefix="patcode-ro-"))  # not under pytest's root-only tmp tree
    home = base / "home"
    store = UsageStore(home / "patcode.db")
    for outcome in ("success", "success", "failure"):
        store.record(Attempt(time.time(), "groq", "openai/gpt-oss-120b", outcome, latency=0.5, input_tokens=10, output_tokens=5))
    store.put_cached("k", "groq", "openai/gpt-oss-120b", 3600, CachedAnswer("hola", "stop", 1, 1, "m"))
    store.close()
    if os.geteuid() == 0:
        for path in (base, home, *home.iterdir()):
            os.chown(path, OTHER_USER, OTHER_USER)
    for path in home.iterdir():
        path.chmod(0o400)
    home.chmod(0o500)
    try:
        yield home
    finally:
        home.chmod(0o700)
        shutil.rmtree(base)


def test_read_only_home_shows_its_history_and_refuses_to_clear_it(read_only_home: Path) -> None:
    home, before = read_only_home, (read_only_home / "patcode.db").read_bytes()
    env = clean_env(PATCODE_HOME=str(home))
    probe = subprocess.run(as_other_user([sys.executable, "-c", f"open({str(home / 'probe')!r}, 'w')"]), env=env,
                           cwd=home.parent, capture_output=True, text=True, timeout=60)
    assert "PermissionError" in probe.stderr  # the honest check: this user really cannot write there

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(as_other_user([sys.executable, "-m", "patcode_core", *args]), env=env, cwd=home.parent,
                              capture_output=True, text=True, timeout=60)

    shown = run("llm", "stats", "--json")
    assert shown.returncode == 0, shown.stderr
    [groq] = json.loads(shown.stdout)["providers"]
    assert (groq["provider"], groq["requests"], groq["successes"], groq["failures"]) == ("groq", 3, 2, 1)
    assert "Requests: 3" in run("llm", "stats").stdout
    assert "groq: 1 respuesta, " in run("llm", "cache", "stats").stdout
    for command in (("llm", "stats", "reset", "--yes"), ("llm", "cache", "clear")):
        refused = run(*command)
        assert refused.returncode == 1, refused
        assert refused.stderr.startswith(
            f"❌ No se ha borrado nada: la base de historial {home / 'patcode.db'} es de solo lectura ("
        )
        assert f"Revisa los permisos de {home}" in refused.stderr and "Traceback" not in refused.stderr
    assert (home / "patcode.db").read_bytes() == before and sorted(p.name for p in home.iterdir()) == ["patcode.db"]


def test_read_only_home_answers_and_says_once_it_will_not_save(
    read_only_home: Path, provider_server: FakeProviderServer
) -> None:
    env = loopback_env(provider_server.url, read_only_home)
    result = subprocess.run(as_other_user([sys.executable, "-m", "patcode_core", "chat", "hola"]), env=env,
                            cwd=read_only_home.parent, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "api says: hola" in result.stdout, result.stderr
    assert warnings_in(result.stderr) == [
        f"[WARNING] La base de historial {read_only_home / 'patcode.db'} es de solo lectura (Permission denied): las "
        "estadísticas muestran lo ya guardado, pero esta sesión no se guardará. Revisa los permisos de "
        f"{read_only_home}"
    ]


def test_a_read_only_store_raises_a_clear_error(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "patcode.db")
    store.read_only = "Permission denied"  # as opened by a user who cannot write (see the tests above)
    with pytest.raises(PatCodeError, match="es de solo lectura"):
        store.clear_attempts()
    with pytest.raises(PatCodeError, match=str(tmp_path)):
        store.clear_cache("groq")
    store.read_only = None
    store.close()


# -- 6. bounded memory with LLM_STATS_STORE=off ------------------------------------------


def _rows(count: int) -> Iterator[Attempt]:
    start = time.time() - 3 * 86400
    for index in range(count):
        provider = ("alpha", "beta", "gamma")[index % 3]
        outcome = ("success", "success", "success", "failure", "skipped", "cancelled")[index % 6 if index % 5 else 0]
        yield Attempt(
            start + index * 10,  # spread over days, so the folded totals span many hours
            provider,
            ("m1", "m2")[index % 2],
            outcome,
            error_kind="timeout" if outcome == "failure" else None,
            latency=0.1 + index % 7,
            input_tokens=index % 11 if index % 13 else None,
            output_tokens=index % 17,
            cost=None if index % 19 == 0 else (index % 23) / 1000,
            fallback_from="alpha" if provider != "alpha" and index % 4 == 0 else None,
            cached=outcome == "success" and index % 9 == 0,
        )


def test_memory_history_is_bounded_and_its_totals_exact(tmp_path: Path) -> None:
    count = 3 * MEMORY_ROWS + 1234
    memory, disk = UsageStore(None), UsageStore(tmp_path / "patcode.db")
    for store in (memory, disk):
        store.put_cached("k", "alpha", "m1", 3600, CachedAnswer("hola", "stop", 1, 1, "m1"))
    for attempt in _rows(count):
        memory.record(attempt)
        disk.record(attempt)
    since = time.time() - 86400
    figures = {}
    for name, store in (("memory", memory), ("disk", disk)):
        figures[name] = {
            "all": [u.as_dict() for u in summarize(store)],
            "provider": [u.as_dict() for u in summarize(store, provider="beta")],
            "since": [u.as_dict() for u in summarize(store, since=since - since % 3600)],  # on an hour: exact too
            "cache": cache_summary(store),
        }
    [(kept,)] = memory.query("SELECT COUNT(*) FROM attempts")
    assert kept <= MEMORY_ROWS
    assert memory.query("SELECT SUM(n) FROM folded") == [(count - kept,)]
    folded_keys = {
        (int(a.at) // 3600, a.provider, a.model, a.outcome, a.error_kind, a.cached, a.fallback_from)
        for a in list(_rows(count))[: count - kept]
    }
    assert memory.query("SELECT COUNT(*) FROM folded") == [(len(folded_keys),)]  # one row per hour and kind, no more
    latency = {"mean_latency", "p50_latency", "p95_latency", "p50_first_token"}
    for part in ("all", "provider", "since"):
        for mine, theirs in zip(figures["memory"][part], figures["disk"][part], strict=True):
            for key, value in theirs.items():
                if key in latency:
                    continue  # from the most recent rows only, as documented
                if key == "cost_by_model":
                    assert mine[key] == pytest.approx(value), (part, key)
                elif isinstance(value, float):
                    assert mine[key] == pytest.approx(value), (part, key)
                else:
                    assert mine[key] == value, (part, key)
    assert figures["memory"]["cache"] == figures["disk"]["cache"]
    assert sum(u["requests"] + u["skipped"] + u["cache_hits"] for u in figures["memory"]["all"]) == count
    assert memory.clear_attempts() == count and summarize(memory) == []
    memory.close()
    disk.close()


# -- 7. the cache is scoped by endpoint and account ----------------------------------------


def test_cache_scope_changes_with_endpoint_and_key_only() -> None:
    base = cache_scope("https://api.groq.com/openai/v1", "gsk_one")
    assert cache_scope("https://api.groq.com/openai/v1/", "gsk_one") == base
    assert cache_scope("https://proxy.example/openai/v1", "gsk_one") != base
    assert cache_scope("https://api.groq.com/openai/v1", "gsk_two") != base
    assert cache_scope("https://api.groq.com/openai/v1", None) == cache_scope("https://api.groq.com/openai/v1", "")
    assert cache_scope("https://api.groq.com/openai/v1", None) != base
    assert "gsk_one" not in base and len(base) == 64


def test_an_answer_is_served_only_to_its_endpoint_and_key(tmp_path: Path) -> None:
    secret = "gsk_scope_secret_never_stored_0123456789"
    answer = CachedAnswer("respuesta de la cuenta A", "stop", 1, 2, "m1")
    path = tmp_path / "patcode.db"

    def log(url: str, key: str | None) -> UsageLog:
        return UsageLog(path, PriceBook({}, {}), cache_for=frozenset({"groq"}), scopes={"groq": cache_scope(url, key)})

    writer = log("https://api.groq.com/openai/v1", secret)
    writer.remember("groq", request("hola"), answer)
    assert writer.cached("groq", request("hola")) == answer
    writer.close()
    assert log("https://api.groq.com/openai/v1", secret).cached("groq", request("hola")) == answer  # from the file
    assert log("https://api.groq.com/openai/v1", "gsk_another_account").cached("groq", request("hola")) is None
    assert log("https://proxy.example/openai/v1", secret).cached("groq", request("hola")) is None
    unscoped = UsageLog(path, PriceBook({}, {}), cache_for=frozenset({"groq"}))  # no scopes given: still works
    assert unscoped.cached("groq", request("hola")) is None
    unscoped.remember("groq", request("hola"), answer)
    assert unscoped.cached("groq", request("hola")) == answer
    unscoped.store.flush()  # the WAL still holds the rows: read it too
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("patcode.db*"))
    assert secret.encode() not in raw and b"gsk_" not in raw


# -- 8. JSON that is JSON -----------------------------------------------------------------


def test_stats_json_has_no_infinity_or_nan(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "patcode.db")
    store.record(Attempt(time.time(), "alpha", "m1", "success", latency=math.inf, ttft=0.1, cost=math.inf))
    store.record(Attempt(time.time(), "alpha", "m1", "success", latency=1.0, ttft=0.2, cost=math.inf))
    [usage] = summarize(store)
    store.close()
    data = usage.as_dict()
    json.dumps(data, allow_nan=False)  # raises on Infinity / NaN
    assert data["cost"] is None and data["cost_by_model"] == {"m1": None} and data["mean_latency"] is None
    plain = ProviderUsage("beta", requests=1, successes=1, mean_latency=0.5, cost=0.25, cost_by_model={"m": 0.25})
    assert plain.as_dict()["mean_latency"] == 0.5 and plain.as_dict()["cost_by_model"] == {"m": 0.25}


# -- 9. PATCODE_HOME ----------------------------------------------------------------------


def test_patcode_home_with_an_unknown_user_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from patcode_core.paths import data_dir

    monkeypatch.setenv("PATCODE_HOME", "~nosuchuser_patcode/x")
    with pytest.raises(ConfigError) as caught:
        data_dir()
    assert str(caught.value).startswith(
        "PATCODE_HOME='~nosuchuser_patcode/x' no es válido: no se puede expandir '~nosuchuser_patcode'"
    )
    monkeypatch.setenv("PATCODE_HOME", "~/patcode-x")
    assert data_dir() == Path.home() / "patcode-x"
