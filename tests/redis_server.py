"""A private Redis for the tests: Debian's ``redis-server`` on a loopback port, in a temporary folder, no service.

``scripts/install-test-servers`` installs Debian's ``redis-server`` package (``PATCODE_REDIS_SERVER`` names
another binary). Nothing of a system Redis is touched: :class:`RedisServer`

- writes a config file (mode 600) into a fresh temporary folder: ``127.0.0.1`` and a free port, that folder as
  its working directory, no snapshots (``save ""``), no append-only file, protected mode, and a random password
  (``requirepass``: in the file, not on the command line where ``ps`` would show it);
- runs ``redis-server`` on it in the foreground (a child of the tests, never daemonized) and waits until it
  answers ``PING``;
- :meth:`stop` ends it (``SIGTERM``, or ``SIGKILL`` with ``kill=True``), :meth:`start` starts it again on the same
  port (an empty server: nothing is saved), :meth:`pause` / :meth:`resume` freeze it (``SIGSTOP`` / ``SIGCONT``:
  a Redis that accepts connections but never answers);
- stops it and deletes the folder at the end, at interpreter exit too.

Fixtures: ``redis_server`` (one server for the session) and ``redis_url`` (that server emptied with ``FLUSHALL``
before each test, as a ``redis://:…@127.0.0.1:port/0`` URL). Without the package the tests are skipped, except
under CI, where they fail.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from private_servers import free_port, require

#: ``LLM_STATE_TIMEOUT`` (and ``SharedState(timeout=…)``) for tests that count what is shared exactly: at the
#: default 0.2 s, one hiccup of a loaded machine sends an instance to its local state and the count is off.
PATIENT_TIMEOUT = 2.0


def redis_binary() -> Path | None:
    """Debian's ``redis-server`` (or ``PATCODE_REDIS_SERVER``), or ``None`` when it is not installed."""
    named = os.environ.get("PATCODE_REDIS_SERVER", "").strip()
    found = named or shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else "")
    return Path(found) if found and Path(found).is_file() else None


def require_redis() -> Path:
    """The server binary; skips the test when Redis is missing, except under CI, where it must be there."""
    return require(redis_binary(), "redis-server is not installed")


class RedisServer:
    """One private ``redis-server`` process (see the module)."""

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary or require_redis()
        self.password = secrets.token_urlsafe(18)
        self.folder = Path(tempfile.mkdtemp(prefix="patcode-redis-"))
        self.log = self.folder / "server.log"
        self.config = self.folder / "redis.conf"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)
        self.start()

    def _write_config(self) -> None:
        lines = [
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.folder}", 'save ""', "appendonly no",
            "protected-mode yes", f"requirepass {self.password}", "daemonize no", f"logfile {self.log}",
            "databases 1", "loglevel warning",
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)

    def start(self) -> None:
        """Start the server (on the same port as before, or a free one the first time); returns once it answers."""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            self.port = self.port or free_port()
            self._write_config()
            self.process = subprocess.Popen([str(self.binary), str(self.config)], cwd=self.folder,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return
            self._end(signal.SIGKILL)
            if self.process is not None and self.process.returncode is not None and not self._log_says_in_use():
                break
            self.port = 0
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"redis-server did not start: {log}")

    def _log_says_in_use(self) -> bool:
        return self.log.exists() and "in use" in self.log.read_text(errors="replace")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=0.5,
                             socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.send_signal(how)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self, kill: bool = False) -> None:
        """Stop the server (``kill``: ``SIGKILL``, as if it crashed). Its data goes with it."""
        self._end(signal.SIGKILL if kill else signal.SIGTERM)

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, password: str | None = None, db: int = 0) -> str:
        """A ``redis://`` URL of this server (``password`` instead of the right one)."""
        return f"redis://:{password or self.password}@127.0.0.1:{self.port}/{db}"

    def client(self) -> Any:
        """A plain synchronous client (tests inspect the keys with it)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True)

    def close(self) -> None:
        """Stop the server if it runs and delete its folder."""
        self._end(signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.close)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private Redis for the whole session."""
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's server, emptied, as a URL with the password in it."""
    if not redis_server.running:
        redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url()
