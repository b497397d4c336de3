"""Evil third-party plugins against the real ``patcode`` process: each one hurts only itself.

Every plugin here is written by :mod:`fakes.evil_plugins` into a folder that
the ``patcode`` process gets on ``PYTHONPATH``, so it is discovered through
entry points exactly like a pip-installed one. Ollama and OpenAI are served by
the healthy loopback fake. Every command runs with a hard time limit: a
plugin that hangs or spins must never hang the command (nor this suite).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from fakes import evil_plugins
from fakes.server_process import FakeProviderServer

PATCODE = str(Path(sys.executable).with_name("patcode"))
_INHERITED = ("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
#: A time limit named in a reason: "2s", "2.0 s", "2 segundos".
_SECONDS = re.compile(r"\d+(?:[.,]\d+)?\s*(?:s\b|seg)")


@dataclass(frozen=True)
class Finished:
    """A ``patcode`` run that ended by itself."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Sandbox:
    """A folder of evil plugins plus the environment a ``patcode`` process runs with."""

    plugins: Path
    home: Path
    env: dict[str, str]

    def install(self, entry_name: str, module_name: str, source: Callable[[], str]) -> None:
        evil_plugins.write_plugin(self.plugins, entry_name, module_name, source())

    def run(self, args: list[str], limit: float, **extra: str) -> Finished:
        """Run ``patcode args``; fail the test if it is still running after ``limit`` seconds."""
        started = time.monotonic()
        try:
            done = subprocess.run(
                [PATCODE, *args],
                env={**self.env, **extra},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=limit,
            )
        except subprocess.TimeoutExpired as exc:
            shown = "".join(
                part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                for part in (exc.stdout, exc.stderr)
            )
            command = " ".join(args)
            pytest.fail(f"`patcode {command}` was still running after {limit:g}s and was killed; it wrote: {shown[-800:]!r}")
        finished = Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        assert "Traceback" not in finished.output, finished.output[-1500:]
        return finished


@pytest.fixture
def sandbox(provider_server: FakeProviderServer, tmp_path: Path) -> Sandbox:
    plugins = tmp_path / "site"
    plugins.mkdir()
    home = tmp_path / "work"
    home.mkdir()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED)}
    python_path = os.pathsep.join(p for p in (str(plugins), inherited.get("PYTHONPATH", "")) if p)
    env = {
        **inherited,
        "PYTHONPATH": python_path,
        "PATCODE_HOME": str(tmp_path / "patcode-home"),
        "PATCODE_LANG": "es",
        "PYTHONUNBUFFERED": "1",  # what a killed process wrote is kept for the failure message
        "OLLAMA_BASE_URL": provider_server.url,
        "OPENAI_API_KEY": f"sk-test-{secrets.token_hex(12)}",
        "OPENAI_BASE_URL": f"{provider_server.url}/v1",
    }
    return Sandbox(plugins, home, env)


def row(stdout: str, provider: str) -> str:
    """The ``/llm providers`` line of ``provider`` (fails when there is none)."""
    pattern = re.compile(rf"^\s*(?:✅|❌) {re.escape(provider)}(?=\s|$)")
    found = [line for line in stdout.splitlines() if pattern.match(line)]
    assert len(found) == 1, f"expected one row for {provider!r} in:\n{stdout}"
    return found[0]


def assert_ok(stdout: str, *providers: str) -> None:
    for provider in providers:
        assert row(stdout, provider).lstrip().startswith("✅"), stdout


def broken_reason(stdout: str, provider: str) -> str:
    """The reason on ``provider``'s ❌ row (fails when the row is ✅ or says nothing)."""
    line = row(stdout, provider)
    assert line.lstrip().startswith("❌"), stdout
    _, dash, reason = line.partition(" — ")
    assert dash and reason.strip(), f"the ❌ row of {provider!r} gives no reason: {line!r}"
    return reason


# -- plugins that hang or spin ----------------------------------------------


def test_a_hanging_availability_check_is_cut_at_its_time_limit(sandbox: Sandbox) -> None:
    sandbox.install("hang", "evil_hang_available", evil_plugins.hang_available_source)
    listed = sandbox.run(["llm", "providers"], limit=10, PATCODE_LOAD_PLUGINS="hang,ollama")
    assert listed.returncode == 0, listed.output
    assert _SECONDS.search(broken_reason(listed.stdout, "hang")), listed.stdout
    assert_ok(listed.stdout, "ollama")


def test_a_hanging_completion_falls_back_and_the_process_exits(sandbox: Sandbox) -> None:
    sandbox.install("hangc", "evil_hang_complete", evil_plugins.hang_complete_source)
    answered = sandbox.run(
        ["chat", "--provider", "hangc", "hola"],
        limit=15,
        LLM_FALLBACK_ORDER="hangc,ollama",
        HANGC_TIMEOUT="2",
        LLM_REQUEST_DEADLINE="12",
    )
    assert answered.returncode == 0, answered.output
    assert answered.stdout.startswith("[ollama") and "ollama says: hola" in answered.stdout
    assert "hangc" in answered.stderr


def test_a_hanging_stream_falls_back_in_a_terminal_and_the_process_exits(sandbox: Sandbox) -> None:
    sandbox.install("hangs", "evil_hang_stream", evil_plugins.hang_stream_source)
    env = {
        **sandbox.env,
        "LLM_FALLBACK_ORDER": "hangs,ollama",
        "HANGS_TIMEOUT": "2",
        "LLM_REQUEST_DEADLINE": "15",
        "TERM": "xterm",
    }
    limit = 20
    started = time.monotonic()
    child = pexpect.spawn(
        PATCODE,
        ["chat", "--provider", "hangs", "hola"],
        env=env,
        cwd=str(sandbox.home),
        encoding="utf-8",
        dimensions=(40, 120),
        timeout=limit,
    )
    try:
        ended = child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=limit) == 0
        while ended and child.isalive() and time.monotonic() - started < limit:  # the terminal closed; let it exit
            time.sleep(0.05)
        ended = ended and not child.isalive()
    finally:
        child.close(force=True)
    shown = _ANSI.sub("", child.before or "")
    assert ended, f"the streamed `patcode chat` was still running after {limit}s and was killed; it showed: {shown[-600:]!r}"
    assert time.monotonic() - started < limit
    assert child.exitstatus == 0, shown
    assert "ollama says: hola" in shown and "hangs" in shown and "Traceback" not in shown


def test_a_hanging_provider_info_is_reported_broken(sandbox: Sandbox) -> None:
    sandbox.install("slowinfo", "evil_hang_info", evil_plugins.hang_info_source)
    listed = sandbox.run(["llm", "providers"], limit=10, PATCODE_PLUGIN_TIMEOUT="1")
    assert listed.returncode == 0, listed.output
    broken_reason(listed.stdout, "slowinfo")
    assert_ok(listed.stdout, "ollama", "openai")


def test_a_busy_loop_in_an_async_hook_falls_back(sandbox: Sandbox) -> None:
    sandbox.install("busy", "evil_busy_loop", evil_plugins.busy_loop_source)
    answered = sandbox.run(
        ["chat", "--provider", "busy", "hola"],
        limit=20,
        LLM_FALLBACK_ORDER="busy,ollama",
        BUSY_TIMEOUT="2",
        LLM_REQUEST_DEADLINE="15",
    )
    # A readable ❌ naming `busy` (exit 1) would be tolerable; the contract asks for the fallback answer.
    assert answered.returncode == 0, answered.output
    assert answered.stdout.startswith("[ollama") and "ollama says: hola" in answered.stdout
    assert "busy" in answered.stderr


def test_an_async_hook_blocked_in_c_code_still_lets_the_command_end(sandbox: Sandbox) -> None:
    sandbox.install("sleeper", "evil_blocking_sleep", evil_plugins.blocking_sleep_source)
    answered = sandbox.run(["chat", "--provider", "sleeper", "hola"], limit=20, LLM_FALLBACK_ORDER="sleeper,ollama", SLEEPER_TIMEOUT="2")
    # time.sleep inside an async def cannot be interrupted: the CLI ends with one line naming the plugin.
    assert answered.returncode == 1, answered.output
    assert "❌" in answered.stderr and "'sleeper'" in answered.stderr and "Traceback" not in answered.stderr


# -- plugins that break at import or in their settings ----------------------


def test_sys_exit_at_import_is_a_broken_plugin(sandbox: Sandbox) -> None:
    sandbox.install("sysexit", "evil_sys_exit", evil_plugins.sys_exit_source)
    listed = sandbox.run(["llm", "providers"], limit=15)
    assert listed.returncode == 0, listed.output
    broken_reason(listed.stdout, "sysexit")
    assert_ok(listed.stdout, "ollama", "openai")
    answered = sandbox.run(["chat", "hola"], limit=15)
    assert answered.returncode == 0, answered.output
    assert "ollama says: hola" in answered.stdout


@pytest.mark.parametrize(
    ("entry", "module", "source", "env", "expected"),
    [
        ("raiser", "evil_settings_raise", evil_plugins.settings_raise_source, {}, ["boom in settings"]),
        (
            "anthropic",
            "evil_anthropic_like",
            evil_plugins.anthropic_like_source,
            {"ANTHROPIC_TIMEOUT": "rapido"},
            ["ANTHROPIC_TIMEOUT", "rapido"],
        ),
    ],
    ids=["settings_raise", "anthropic_bad_timeout"],
)
def test_a_plugin_with_broken_settings_hurts_only_itself(
    sandbox: Sandbox,
    entry: str,
    module: str,
    source: Callable[[], str],
    env: dict[str, str],
    expected: list[str],
) -> None:
    sandbox.install(entry, module, source)
    listed = sandbox.run(["llm", "providers"], limit=15, **env)
    assert listed.returncode == 0, listed.output
    reason = broken_reason(listed.stdout, entry)
    assert all(text in reason for text in expected), reason
    assert_ok(listed.stdout, "ollama", "openai")
    answered = sandbox.run(["chat", "hola"], limit=15, **env)
    assert answered.returncode == 0, answered.output
    assert re.search(r"^(ollama|api) says: hola$", answered.stdout, re.MULTILINE), answered.stdout


def test_a_provider_without_base_url_works(sandbox: Sandbox) -> None:
    sandbox.install("nobase", "evil_no_base_url", evil_plugins.no_base_url_source)
    listed = sandbox.run(["llm", "providers"], limit=15)
    assert listed.returncode == 0, listed.output
    assert_ok(listed.stdout, "nobase", "ollama", "openai")
    answered = sandbox.run(["chat", "--provider", "nobase", "hola"], limit=15)
    assert answered.returncode == 0, answered.output
    assert answered.stdout.startswith("[nobase") and "NOBASE-OK" in answered.stdout


# -- plugins after secrets --------------------------------------------------


def test_a_plugin_cannot_claim_another_plugins_provider(
    sandbox: Sandbox, provider_server: FakeProviderServer, tmp_path: Path
) -> None:
    sandbox.install("aaa_evil", "evil_name_claim", evil_plugins.name_claim_source)
    leak = tmp_path / "leak.txt"
    key = f"gsk_realkey_{secrets.token_hex(12)}"
    env = {"GROQ_API_KEY": key, "GROQ_BASE_URL": f"{provider_server.url}/openai/v1", "EVIL_LEAK_FILE": str(leak)}

    def assert_no_leak(command: str) -> None:
        assert not leak.exists(), f"`patcode {command}` handed the groq key to aaa_evil: {leak.read_text(encoding='utf-8')!r}"

    listed = sandbox.run(["llm", "providers"], limit=15, **env)
    assert_no_leak("llm providers")
    assert listed.returncode == 0, listed.output
    assert any("aaa_evil" in line and "groq" in line for line in listed.output.splitlines()), listed.output
    assert "openai/gpt-oss-120b" in row(listed.stdout, "groq"), listed.stdout  # the real plugin's model
    assert_ok(listed.stdout, "groq", "ollama", "openai")
    answered = sandbox.run(["chat", "hola"], limit=15, **env)
    assert_no_leak("chat hola")
    assert answered.returncode == 0, answered.output
    assert answered.stdout.startswith("[groq · openai/gpt-oss-120b") and "api says: hola" in answered.stdout
    tested = sandbox.run(["llm", "test", "groq"], limit=15, **env)
    assert_no_leak("llm test groq")
    assert tested.returncode == 0 and "EVIL-ANSWER" not in tested.stdout, tested.output
    assert key not in listed.output + answered.output + tested.output


@pytest.mark.parametrize(
    ("log_format", "key"),
    [
        ("text", f"sk-test-{secrets.token_hex(12)}"),
        ("json", f"sk-test-{secrets.token_hex(12)}"),
        ("text", f"corp{secrets.token_hex(12)}"),  # a key of no known shape: only PatCode's own record of it can hide it
    ],
    ids=["text", "json", "text-unshaped-key"],
)
def test_an_import_error_never_shows_the_key(sandbox: Sandbox, log_format: str, key: str) -> None:
    sandbox.install("leaky", "evil_import_error_with_key", evil_plugins.import_error_with_key_source)
    listed = sandbox.run(["llm", "providers"], limit=15, OPENAI_API_KEY=key, PATCODE_LOG_FORMAT=log_format)
    assert listed.returncode == 0, listed.output
    assert key not in listed.output
    broken_reason(listed.stdout, "leaky")
    assert "key=***" in listed.output, listed.output
    assert_ok(listed.stdout, "ollama", "openai")
