"""``patcode serve`` as a real process on loopback, for the gateway's tests (page, API, SDK, security).

``GatewayProcess`` is a plain class and a context manager: it starts ``patcode serve --port 0`` from the running
virtualenv's ``bin`` with a clean environment (no inherited ``LLM_*``, ``PATCODE_*`` or provider variables), its own
``PATCODE_HOME`` and working directory (whose ``.env`` the page writes the fallback order to), waits for the line
with the URL and stops the server at the end::

    with GatewayProcess(tmp_path, env=loopback_provider_env(openai=server.url)) as gateway:
        httpx.get(f"{gateway.url}/healthz")

The fixtures at the bottom (``gateway_factory``, ``gateway``) wrap it for pytest; a test module imports the ones it
uses (``from gateway_process import gateway_factory  # noqa: F401``).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from helpers import provider_prefixes

URL_PATTERN = re.compile(r"http://\S+:\d+")
#: A key the fake provider server accepts for every plugin (it checks none); shaped like the real ones.
OPENAI_TEST_KEY = "sk-loopback-gateway-test-key-000000"
GROQ_TEST_KEY = "gsk_loopback_gateway_test_key_000000"
#: Locale variables that would choose the language when PATCODE_LANG is unset.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def patcode_command() -> Path:
    """The ``patcode`` console script of the virtualenv running the tests."""
    return Path(sys.executable).parent / "patcode"


def loopback_provider_env(
    *, openai: str | None = None, groq: str | None = None, plugins: str = "openai,groq", **extra: str
) -> dict[str, str]:
    """Provider settings pointing the openai / groq plugins at fake provider servers (base URLs like ``server.url``).

    A provider given no URL has no key, so it shows ❌ (``<NAME>_API_KEY no está configurada``). Only ``plugins`` load,
    so the page and the fallback stay small and no local model is loaded. ``extra`` adds or overrides variables.
    """
    env = {
        "PATCODE_LOAD_PLUGINS": plugins,
        "LLM_MAX_RETRIES": "0",
        "OPENAI_API_KEY": OPENAI_TEST_KEY if openai else "",
        "GROQ_API_KEY": GROQ_TEST_KEY if groq else "",
    }
    if openai:
        env["OPENAI_BASE_URL"] = f"{openai}/v1"
    if groq:
        env["GROQ_BASE_URL"] = f"{groq}/openai/v1"
    env.update(extra)
    return env


def read_dotenv(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a ``.env`` file (``export`` and surrounding quotes dropped); {} when absent."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


class GatewayProcess:
    """One ``patcode serve`` process on loopback.

    ``root``: a directory of the test's own; ``root/work`` becomes the working directory (``cwd``) and
    ``root/home`` the ``PATCODE_HOME``. ``env``: variables on top of the cleaned environment. ``dotenv``: the
    initial contents of ``cwd/.env``. ``lang``: ``PATCODE_LANG`` (``None`` leaves it unset, with the locale
    variables set to ``C.UTF-8`` so that only the browser's ``Accept-Language`` can choose the language).
    """

    def __init__(
        self,
        root: Path,
        *,
        env: Mapping[str, str] | None = None,
        dotenv: str | None = None,
        lang: str | None = "es",
        host: str = "127.0.0.1",
        args: tuple[str, ...] = (),
        start_timeout: float = 30.0,
    ) -> None:
        self.root = Path(root)
        self.cwd = self.root / "work"
        self.home = self.root / "home"
        self.log_path = self.root / "gateway.log"
        self.host = host
        self.args = args
        self.start_timeout = start_timeout
        self.dotenv = dotenv
        self.env = self._environment(env or {}, lang)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._log_file: Any = None

    @staticmethod
    def _environment(overrides: Mapping[str, str], lang: str | None) -> dict[str, str]:
        prefixes = provider_prefixes()
        env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
        env["PYTHONUNBUFFERED"] = "1"
        env["NO_COLOR"] = "1"
        if lang is None:
            for name in _LOCALE_VARIABLES:
                env.pop(name, None)
            env["LANG"] = "C.UTF-8"
        else:
            env["PATCODE_LANG"] = lang
        env.update(overrides)
        return env

    @property
    def dotenv_path(self) -> Path:
        return self.cwd / ".env"

    def read_dotenv(self) -> dict[str, str]:
        """The variables now in the working directory's ``.env``."""
        return read_dotenv(self.dotenv_path)

    def start(self) -> GatewayProcess:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env["PATCODE_HOME"] = str(self.home)
        if self.dotenv is not None:
            self.dotenv_path.write_text(self.dotenv, encoding="utf-8")
        self._log_file = open(self.log_path, "w", encoding="utf-8")  # closed in stop()
        self.process = subprocess.Popen(
            [str(patcode_command()), "serve", "--host", self.host, "--port", "0", *self.args],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        threading.Thread(target=self._pump_stdout, name="gateway-stdout", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self.url:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RuntimeError(f"patcode serve printed no URL within {self.start_timeout:.0f} s\n{self.output()}")
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the process ended
                code = self.process.wait(timeout=5)
                raise RuntimeError(f"patcode serve ended (exit {code}) before printing its URL\n{self.output()}")
            found = URL_PATTERN.search(line)
            if found:
                self.url = found.group(0).rstrip("/.,;)")
        return self

    def _pump_stdout(self) -> None:
        """Reads stdout to the end (so the pipe never fills), handing lines to start()."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def output(self) -> str:
        """What the process printed so far, stdout then stderr (for failure messages)."""
        stderr = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "--- stdout\n" + "\n".join(self.stdout_lines) + "\n--- stderr\n" + stderr[-8000:]

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server (no cookies shared with any browser)."""
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kwargs)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            code = self.process.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """Starts gateways for one test (keyword arguments as ``GatewayProcess``); every one is stopped at the end."""
    started: list[GatewayProcess] = []

    def start(**kwargs: Any) -> GatewayProcess:
        gateway = GatewayProcess(tmp_path / f"gateway-{len(started)}", **kwargs)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(gateway_factory: Callable[..., GatewayProcess], provider_server: Any) -> GatewayProcess:
    """A gateway whose openai answers from the loopback fake server and whose groq has no key (❌);
    the fallback order ``openai,groq`` is in the working directory's ``.env``."""
    return gateway_factory(
        env=loopback_provider_env(openai=provider_server.url),
        dotenv="LLM_FALLBACK_ORDER=openai,groq\n",
    )
