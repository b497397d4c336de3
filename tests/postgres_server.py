"""A private PostgreSQL for the tests: Debian's server binaries, a temporary cluster, a loopback port, no service.

``scripts/install-test-servers`` installs Debian's ``postgresql`` package; its binaries live in
``/usr/lib/postgresql/<version>/bin`` (not on ``PATH``: Debian's ``/usr/bin`` has only wrappers),
and the newest version there is used (``PATCODE_PG_BIN`` names another folder). Nothing of the
system's own cluster or service is touched: :class:`PostgresServer`

- runs ``initdb`` into a fresh temporary folder, with a superuser ``patcode`` whose password is
  random (password logins over TCP, ``scram-sha-256``; the Unix socket, in that same folder, trusts);
- starts ``postgres`` through ``pg_ctl`` on ``127.0.0.1`` and a free port, with ``-k`` that
  folder as its socket directory, and ``fsync``, ``synchronous_commit`` and ``full_page_writes``
  off (the data dies with the tests);
- stops it (``pg_ctl stop -m fast``) and deletes the folder at the end, at interpreter exit too.

**As root.** ``postgres`` refuses to run as root ("root" execution of the PostgreSQL server is not
permitted). When the tests run as root, every server command runs as the unprivileged user
``nobody`` (uid 65534): Python's ``subprocess`` switches user and group before ``exec``
(``user=``, ``group=``, ``extra_groups=[]``, the same as ``setpriv --reuid --regid
--clear-groups``), and the temporary folder is handed to ``nobody`` (``chown``). The folder is
made with ``mkdtemp`` under the system's temporary directory, which ``nobody`` can enter
(``/tmp``, mode 1777). The tests themselves, as root, reach the server over TCP like any client.

Fixtures: ``postgres_server`` (one server for the session) and ``postgres_url`` (a fresh
database per test, ``CREATE DATABASE``, as a ``postgresql://patcode:…@127.0.0.1:port/name`` URL).
Without the package the tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from private_servers import free_port, require

UNPRIVILEGED = "nobody"
SUPERUSER = "patcode"
#: Server settings for throwaway data: no waiting on the disk.
_FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (the newest version), or ``None`` when none is installed."""
    named = os.environ.get("PATCODE_PG_BIN", "").strip()
    if named:
        return Path(named) if (Path(named) / "initdb").is_file() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: _version_key(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def require_postgres() -> Path:
    """The server binaries' folder; skips the test when PostgreSQL is missing, except under CI, where it must be there."""
    return require(postgres_bin(), "PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")


class PostgresServer:
    """One private PostgreSQL cluster and its server process (see the module)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or require_postgres()
        self.password = secrets.token_urlsafe(18)
        self.folder = Path(tempfile.mkdtemp(prefix="patcode-postgres-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._as: dict[str, Any] = {}
        atexit.register(self.close)
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self._as:
            os.chown(password_file, self._as["user"], self._as["group"])
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={password_file}", "--auth-host=scram-sha-256",
                  "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
        password_file.unlink()
        self.start()

    def _run(self, program: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / program), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(self.folder), "LC_ALL": "C"}, cwd=self.folder, **self._as,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr or result.stdout}\n{log}")
        return result

    def start(self) -> None:
        """Start the server (on the same port as before, or a free one the first time)."""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = self.port or free_port()
            options = " ".join(["-h", "127.0.0.1", "-p", str(port), "-k", str(self.folder), *_FAST])
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options, "start")
            except RuntimeError:
                if self.port:
                    raise
                continue
            self.port = port
            return
        raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected; ``immediate``: as if it crashed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def processes(self) -> list[int]:
        """The server's process and its children (one backend per connection, and the helpers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            try:
                # /proc/<pid>/stat: "pid (name) state ppid ..."; the name may hold spaces, so split after ")".
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                children.append(int(entry.name))
        return [postmaster, *children]

    def pause(self) -> None:
        """Freeze the whole server: connections stay open and the kernel accepts new ones, nothing is answered."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again."""
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, how: signal.Signals) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, how)
            except ProcessLookupError:
                pass  # a backend that ended meanwhile

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """A ``postgresql://`` URL of ``database`` on this server (``password`` instead of the right one)."""
        return f"postgresql://{SUPERUSER}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self.folder.exists():
            if self.running:
                try:
                    self.resume()  # a frozen server cannot act on the stop
                    self.stop("immediate")
                except (OSError, ValueError, RuntimeError, subprocess.TimeoutExpired):
                    pass  # already gone; the folder goes anyway
            shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.close)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL for the whole session."""
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server, as a URL with the password in it."""
    if not postgres_server.running:
        postgres_server.start()
    return postgres_server.create_database()
