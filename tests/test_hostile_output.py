"""A hostile provider against the real ``patcode`` process: what it sends must not reach the terminal, memory or logs.

The primary provider (openai) points at ``fakes/hostile_server.py``, one
behaviour per test; the fallback (ollama) is the healthy loopback fake, which
answers ``ollama says: <prompt>``. Each command runs as a real process, in a
pipe or in a pseudo-terminal (where PatCode streams), with a timeout so a
hang fails the test instead of the suite.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from fakes.hostile_server import HostileServer
from fakes.server_process import FakeProviderServer

PATCODE = str(Path(sys.executable).with_name("patcode"))
PROMPT = "patcode>"
KEY = "sk-hostile-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
# A key no pattern recognises as a key: only the registry of configured secrets can hide it.
PLAIN_KEY = "Zq8" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
MB = 1024 * 1024
RSS_LIMIT = 300 * MB
# Characters a provider must never get onto the user's terminal raw.
HOSTILE_CHARS = {"ESC": "\x1b", "C1 CSI": "\x9b", "BEL": "\x07", "bidi override": "\u202e", "zero-width space": "\u200b"}
SGR = re.compile(r"\x1b\[[0-9;]*m")
# Runs the CLI and reports the peak RSS of its process tree (Linux: KiB) in a file.
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@dataclass
class Result:
    """A finished ``patcode`` process."""

    code: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def hostile_process() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture
def hostile(hostile_process: HostileServer) -> HostileServer:
    """The hostile server with an empty request log."""
    hostile_process.reset()
    return hostile_process


def cli_env(hostile: HostileServer, behaviour: str, fallback: FakeProviderServer, home: Path, **extra: str) -> dict[str, str]:
    """The environment of one run: openai at ``behaviour``, ollama healthy, short limits."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_")) and key not in ("NO_COLOR", "FORCE_COLOR")
    }
    return {
        **inherited,
        "PATCODE_HOME": str(home / "patcode-home"),
        "PATCODE_LANG": "es",
        "PATCODE_LOAD_PLUGINS": "openai,ollama",
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": f"{hostile.base(behaviour)}/v1",
        "OLLAMA_BASE_URL": fallback.url,
        "LLM_FALLBACK_ORDER": "openai,ollama",
        "OPENAI_TIMEOUT": "5",
        "OLLAMA_TIMEOUT": "5",
        "LLM_CONNECT_TIMEOUT": "2",
        "LLM_REQUEST_DEADLINE": "25",
        "LLM_RETRY_BASE_DELAY": "0.01",
        "LLM_FIRST_TOKEN_TIMEOUT": "5",
        "LLM_STREAM_IDLE_TIMEOUT": "5",
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position requests
        **extra,
    }


def run_cli(args: list[str | bytes], env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 60) -> Result:
    """``patcode args`` with pipes, under a wrapper that measures its peak RSS; a hang fails, it never blocks the suite."""
    rss_file = cwd / f"rss-{secrets.token_hex(4)}"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, str(rss_file), PATCODE, *args],
            env=env,
            cwd=cwd,
            input=stdin.encode() if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"patcode {args!r} did not end in {timeout}s; stderr so far: {(expired.stderr or b'')[-2000:]!r}")
    seconds = time.monotonic() - started
    peak = int(rss_file.read_text()) * 1024 if rss_file.exists() else 0
    return Result(done.returncode, done.stdout.decode("utf-8", "surrogateescape"), done.stderr.decode("utf-8", "surrogateescape"),
                  peak, seconds)


def run_pty(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 30) -> tuple[int | None, str]:
    """``patcode args`` in a pseudo-terminal until it exits: (exit status, everything it wrote)."""
    transcript = io.StringIO()
    child = pexpect.spawn(PATCODE, args, env=env, cwd=str(cwd), encoding="utf-8", codec_errors="surrogateescape",
                          dimensions=(40, 120), timeout=timeout)
    child.logfile_read = transcript
    try:
        child.expect(pexpect.EOF)
    except pexpect.TIMEOUT:
        child.close(force=True)
        pytest.fail(f"patcode {args!r} in a terminal did not end in {timeout}s; output: {transcript.getvalue()[-2000:]!r}")
    child.close()
    return child.exitstatus, transcript.getvalue()


def raw_hostile(text: str) -> list[str]:
    """The hostile characters found raw in ``text`` (a raw C1 byte decodes to ``\\udc9b``)."""
    found = [name for name, char in HOSTILE_CHARS.items() if char in text]
    return found + (["raw byte 0x9b"] if "\udc9b" in text else [])


def provider_line(providers_output: str, name: str) -> str:
    """The ``llm providers`` line of ``name`` (empty when the provider is missing from the list)."""
    return next((line for line in providers_output.splitlines() if f" {name} " in line or line.endswith(f" {name}")), "")


# --- 1-3: terminal escapes and invisible characters --------------------------------------------------------


def test_escapes_in_a_pipe_are_shown_as_text(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "escapes", fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "HOSTILE-OK" in result.stdout
    assert raw_hostile(result.stdout) == [] and raw_hostile(result.stderr) == []
    for visible in ("\\x1b", "\\u202e", "\\u200b", "\\x9b", "\\x07"):
        assert visible in result.stdout, visible


def test_escapes_in_a_terminal_stream(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    status, output = run_pty(["chat", "hola"], cli_env(hostile, "escapes", fallback_server, tmp_path), tmp_path)
    assert status == 0, output
    assert "HOSTILE-OK" in output
    assert hostile.requests("escapes", "chat")[0]["body"]["stream"] is True  # it streamed, split escapes and all
    assert "\x1b]" not in output and "\x1b[2J" not in output
    assert "\x9b" not in output and "\udc9b" not in output
    assert "\u202e" not in output and "\u200b" not in output


def test_no_color_means_no_colour_sequence(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    env = cli_env(hostile, "escapes", fallback_server, tmp_path, NO_COLOR="1")
    status, output = run_pty(["chat", "hola"], env, tmp_path)
    assert status == 0, output
    assert "HOSTILE-OK" in output
    assert SGR.findall(output) == []


def test_interactive_session_survives_escapes(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    transcript = io.StringIO()
    child = pexpect.spawn(PATCODE, env=cli_env(hostile, "escapes", fallback_server, tmp_path), cwd=str(tmp_path),
                          encoding="utf-8", codec_errors="surrogateescape", dimensions=(40, 120), timeout=15)
    child.logfile_read = transcript
    try:
        child.expect_exact(PROMPT)
        child.send("hola\r")
        child.expect_exact("HOSTILE-OK")
        child.expect_exact(PROMPT)
        child.send("/exit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, transcript.getvalue()[-2000:]
    answer = transcript.getvalue().split("HOSTILE-OK", 1)[1]
    assert "\x1b]" not in answer and "\x1b[2J" not in answer and "\x9b" not in answer and "\u202e" not in answer


def test_escapes_in_an_error_message(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "escape_error", fallback_server, tmp_path), tmp_path)
    assert result.code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("❌")]
    assert errors, result.stderr
    assert "\\x1b]0;title" in errors[0]
    assert raw_hostile(result.output) == []


@pytest.mark.parametrize(("behaviour", "model"), [("escapes", "gpt-no-existe"), ("escape_error", "gpt-4o-mini")])
def test_escapes_in_llm_providers(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, behaviour: str, model: str
) -> None:
    env = cli_env(hostile, behaviour, fallback_server, tmp_path, OPENAI_MODEL=model)
    result = run_cli(["llm", "providers"], env, tmp_path)
    assert hostile.requests(behaviour, "models"), "the provider's model list was never asked for"
    line = provider_line(result.stdout, "openai")
    if behaviour == "escapes":  # the server answers a model it does not list: ✅ with a note quoting the listed ids
        assert line.startswith("  ✅") and "evil\\x1b]0;model\\x07\\u202e" in line, result.output
    else:
        assert "❌" in line, result.output
    assert raw_hostile(result.output) == []


# --- 4-5: text that is not valid Unicode ---------------------------------------------------------------------


def test_lone_surrogate_becomes_a_replacement_character(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "surrogate", fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "before \ufffd after" in result.stdout


def test_lone_surrogate_is_stored_cached_and_counted(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    env = cli_env(hostile, "surrogate", fallback_server, tmp_path, LLM_CACHE="true", LLM_LOG_CONTENT="true")
    chats = [run_cli(["chat", "hola"], env, tmp_path) for _ in range(2)]
    for result in chats:
        assert result.code == 0 and "before \ufffd after" in result.stdout, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    stats = run_cli(["llm", "stats", "--json"], env, tmp_path)
    assert stats.code == 0, stats.stderr
    figures = {p["provider"]: p for p in json.loads(stats.stdout)["providers"]}
    assert "openai" in figures, f"no usage rows were kept: {stats.stdout}"
    assert (figures["openai"]["successes"], figures["openai"]["cache_hits"]) == (1, 1), figures["openai"]
    assert len(hostile.requests("surrogate", "chat")) == 1  # the second answer came from the cache


def test_lone_surrogate_in_a_piped_session(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    env = cli_env(hostile, "surrogate", fallback_server, tmp_path)
    result = run_cli([], env, tmp_path, stdin="hola\nsegunda\n/exit\n")
    assert result.code == 0, result.stderr
    assert result.stdout.count("before \ufffd after") == 2, result.stdout
    assert len(hostile.requests("surrogate", "chat")) == 2


def test_a_prompt_that_is_not_utf8_is_a_usage_error(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    result = run_cli(["chat", b"caf\xe9"], cli_env(hostile, "escapes", fallback_server, tmp_path), tmp_path)
    assert result.code == 2, result.stderr
    assert "UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert hostile.requests(kind="chat") == [] and fallback_server.requests("chat") == []


# --- 6-7: answers too big to hold --------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["gzip_bomb", "endless"])
def test_huge_answer_falls_back_in_bounded_memory(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, behaviour: str
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, behaviour, fallback_server, tmp_path), tmp_path, timeout=45)
    assert result.code == 0, result.stderr[-2000:]
    assert "ollama says: hola" in result.stdout
    assert "LLM_MAX_RESPONSE_BYTES" in result.stderr
    assert result.peak_rss < RSS_LIMIT, f"peak RSS {result.peak_rss // MB} MB"
    assert result.seconds < 30


@pytest.mark.parametrize("behaviour", ["gzip_bomb", "endless"])
def test_huge_model_list_marks_the_provider_down(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, behaviour: str
) -> None:
    result = run_cli(["llm", "providers"], cli_env(hostile, behaviour, fallback_server, tmp_path), tmp_path, timeout=45)
    line = provider_line(result.stdout, "openai")
    assert "❌" in line and "LLM_MAX_RESPONSE_BYTES" in line, result.output[-2000:]
    assert "✅" in provider_line(result.stdout, "ollama"), result.output
    assert result.peak_rss < RSS_LIMIT, f"peak RSS {result.peak_rss // MB} MB"
    assert result.seconds < 30


@pytest.mark.parametrize("behaviour", ["gzip_bomb", "endless"])
def test_huge_stream_falls_back_in_a_terminal(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, behaviour: str
) -> None:
    started = time.monotonic()
    status, output = run_pty(["chat", "hola"], cli_env(hostile, behaviour, fallback_server, tmp_path), tmp_path, timeout=40)
    assert hostile.requests(behaviour, "chat")[0]["body"]["stream"] is True
    assert status == 0, output[-2000:]
    assert "ollama says: hola" in output
    assert "LLM_MAX_RESPONSE_BYTES" in output
    assert time.monotonic() - started < 30


# --- 8: the key never comes back out ------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, PLAIN_KEY], ids=["sk-key", "plain-key"])
@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("terminal", [True, False], ids=["pty", "pipe"])
def test_an_echoed_key_is_never_shown(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, key: str, log_format: str, terminal: bool
) -> None:
    extra = {"OPENAI_API_KEY": key, **({"PATCODE_LOG_FORMAT": "json"} if log_format == "json" else {})}
    env = cli_env(hostile, "key_echo", fallback_server, tmp_path, **extra)
    if terminal:
        _, output = run_pty(["chat", "hola"], env, tmp_path)
    else:
        output = run_cli(["chat", "hola"], env, tmp_path).output
    sent = hostile.requests("key_echo", "chat")
    assert sent and sent[0]["headers"]["authorization"] == f"Bearer {key}"  # the server had the key to echo
    assert key not in output
    assert key[3:] not in output  # not even without its first characters


# --- 9-12: answers in shapes a provider should not send -------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["redirect", "redirect301", "redirect307"])
def test_a_redirect_is_named_and_falls_back(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, behaviour: str
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, behaviour, fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "ollama says: hola" in result.stdout
    assert "OPENAI_BASE_URL" in result.stderr and "redirig" in result.stderr
    assert len(hostile.requests(behaviour, "chat")) == 1


def test_a_quota_error_inside_a_200_is_a_quota_error(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "error_in_200", fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "ollama says: hola" in result.stdout
    assert len(hostile.requests("error_in_200", "chat")) == 1  # quota is not retried
    assert "You exceeded your current quota" in result.stderr


def test_absurd_rate_limit_headers_are_ignored(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "odd_headers", fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "ODD-HEADERS-OK" in result.stdout
    assert fallback_server.requests("chat") == []


def test_deeply_nested_json_is_a_malformed_answer(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    result = run_cli(["chat", "hola"], cli_env(hostile, "nested", fallback_server, tmp_path), tmp_path)
    assert result.code == 0, result.stderr
    assert "ollama says: hola" in result.stdout
    assert "Reinstala" not in result.stderr and "plugin" not in result.stderr
    assert "respuesta mal formada" in result.stderr or "no-JSON" in result.stderr


# --- 13: a stream that ends with [DONE] but no finish reason -------------------------------------------------


def test_done_without_finish_restarts_on_the_next_provider(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    status, output = run_pty(["chat", "hola"], cli_env(hostile, "done_no_finish", fallback_server, tmp_path), tmp_path)
    assert status == 0, output
    assert "↻" in output and "ollama says: hola" in output.split("↻", 1)[1], output


def test_done_without_finish_is_an_error_when_asked(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path
) -> None:
    env = cli_env(hostile, "done_no_finish", fallback_server, tmp_path, LLM_STREAM_RECOVERY="error")
    status, output = run_pty(["chat", "hola"], env, tmp_path)
    assert status == 1, output
    assert "se cortó tras" in output  # error.stream_interrupted
    assert fallback_server.requests("chat") == []


def test_done_without_finish_is_never_cached(hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path) -> None:
    for behaviour in ("ok", "done_no_finish"):
        home = tmp_path / behaviour  # a cache of its own
        home.mkdir()
        env = cli_env(hostile, behaviour, fallback_server, home, LLM_CACHE="true")
        for _ in range(2):
            status, output = run_pty(["chat", "hola"], env, tmp_path)
            assert status == 0, output
    # The control: a whole streamed answer is cached, so the second run never reached the server.
    assert len(hostile.requests("ok", "chat")) == 1
    streamed = [r for r in hostile.requests("done_no_finish", "chat") if r["body"].get("stream") is True]
    assert len(streamed) == 2


# --- 14: a key that cannot go in an HTTP header ------------------------------------------------------------


@pytest.mark.parametrize("key", ["sk-abc\ndef0123456789abcdef", "sk-abcñdef0123456789abcdef"], ids=["newline", "non-ascii"])
def test_a_key_that_cannot_be_a_header_is_a_configuration_problem(
    hostile: HostileServer, fallback_server: FakeProviderServer, tmp_path: Path, key: str
) -> None:
    env = cli_env(hostile, "key_echo", fallback_server, tmp_path, OPENAI_API_KEY=key)
    providers = run_cli(["llm", "providers"], env, tmp_path)
    openai = provider_line(providers.stdout, "openai")
    assert "❌" in openai and "OPENAI_API_KEY" in openai, providers.output
    assert "✅" in provider_line(providers.stdout, "ollama"), providers.output
    chat = run_cli(["chat", "hola"], env, tmp_path)
    assert chat.code == 0, chat.stderr
    assert "ollama says: hola" in chat.stdout
    assert "Traceback" not in chat.stderr + providers.stderr
    assert hostile.requests() == []
