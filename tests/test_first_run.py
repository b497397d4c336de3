"""What a new user meets first (issue 10): token counts that are unknown, notices that keep their own line,
honest statistics, a spinner and a banner that name who answers, advice that applies, help in one language.

Every test runs the real ``patcode`` process (through a pipe, or in a pseudo-terminal where the terminal
matters) against the loopback provider server.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pexpect
from fakes.server_process import FakeProviderServer

PATCODE = str(Path(sys.executable).with_name("patcode"))
PROMPT = "patcode>"
ROOT = Path(__file__).resolve().parents[1]
#: PatCode's own colours (dim, code, warning); prompt_toolkit's resets are not ours.
OUR_COLOURS = ("\x1b[2m", "\x1b[36m", "\x1b[33m")
OPENAI_KEY = "sk-first-run-test-key-0000000000"


def environment(home: Path, **extra: str) -> dict[str, str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_")) and key not in ("NO_COLOR", "FORCE_COLOR")
    }
    return {**base, "PATCODE_LANG": "es", "PATCODE_HOME": str(home / "patcode-home"), "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1", **extra}


def openai_env(server: FakeProviderServer, home: Path, **extra: str) -> dict[str, str]:
    """Only the openai plugin, on the loopback server (an OpenAI-compatible server such as llama.cpp's)."""
    return environment(home, PATCODE_LOAD_PLUGINS="openai", OPENAI_API_KEY=OPENAI_KEY,
                       OPENAI_BASE_URL=f"{server.url}/v1", **extra)


def groq_ollama_env(server: FakeProviderServer, home: Path, *, groq_key: bool = True, **extra: str) -> dict[str, str]:
    keys = {"GROQ_API_KEY": "gsk_first_run_test_key_00000000"} if groq_key else {}
    return environment(home, PATCODE_LOAD_PLUGINS="groq,ollama", GROQ_BASE_URL=f"{server.url}/openai/v1",
                       OLLAMA_BASE_URL=server.url, **keys, **extra)


def run(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "patcode_core", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60)


def run_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, int | None]:
    """``patcode args`` on a terminal: everything it showed, and its exit status."""
    child = pexpect.spawn(PATCODE, args, env=env, cwd=str(cwd), encoding="utf-8", timeout=20, dimensions=(40, 200))
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    return output, child.exitstatus


def session(env: dict[str, str], cwd: Path, args: list[str] | None = None) -> pexpect.spawn:
    """``patcode`` on a terminal; ``shown(child)`` is everything it printed so far."""
    child = pexpect.spawn(PATCODE, args or [], env=env, cwd=str(cwd), encoding="utf-8", timeout=20, dimensions=(40, 200))
    child.logfile_read = io.StringIO()
    if args is None:
        child.expect_exact(PROMPT)
    return child


def shown(child: pexpect.spawn) -> str:
    return child.logfile_read.getvalue()


def stats_json(env: dict[str, str], cwd: Path) -> dict[str, dict]:
    result = run(["llm", "stats", "--json"], env, cwd)
    assert result.returncode == 0, result.stderr
    return {row["provider"]: row for row in json.loads(result.stdout)["providers"]}


# -- §2c: unknown token counts -------------------------------------------------


def test_streamed_answers_without_counts_are_unknown_never_zero(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = openai_env(provider_server, tmp_path)
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "usage": False, "times": 2})  # llama.cpp: no usage
    for prompt in ("uno", "dos"):
        answer, status = run_pty(["chat", prompt], env, tmp_path)
        assert status == 0, answer
        assert f"api says: {prompt}" in answer and "sin recuento de tokens]" in answer  # the footer says so
    assert run(["chat", "tres"], env, tmp_path).returncode == 0  # not streamed: counted (19 in, 10 out)

    database = tmp_path / "patcode-home" / "patcode.db"
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT input_tokens, output_tokens FROM attempts ORDER BY id").fetchall()
    assert stored == [(None, None), (None, None), (19, 10)]  # unknown is NULL, not 0

    block = run(["llm", "stats"], env, tmp_path).stdout
    assert "  Tokens entrada/salida: 19 / 10 (+2 respuestas sin recuento)" in block
    # A priced model whose tokens were not counted has an unknown cost, per model as in the total.
    assert "  Coste: desconocido (gpt-4o-mini desconocido)" in block
    openai = stats_json(env, tmp_path)["openai"]
    assert (openai["input_tokens"], openai["output_tokens"], openai["uncounted_answers"]) == (19, 10, 2)


def test_no_counted_answer_at_all_shows_unknown_tokens(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = openai_env(provider_server, tmp_path)
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "usage": False})
    assert run_pty(["chat", "hola"], env, tmp_path)[1] == 0
    assert "  Tokens entrada/salida: desconocidos (1 respuesta sin recuento)" in run(["llm", "stats"], env, tmp_path).stdout
    openai = stats_json(env, tmp_path)["openai"]
    assert (openai["input_tokens"], openai["output_tokens"], openai["uncounted_answers"]) == (None, None, 1)


def test_a_server_that_ignores_max_tokens_is_warned_once(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = openai_env(provider_server, tmp_path, LLM_MAX_TOKENS="2")
    # Streamed in a session: "api says: uno" is 3 tokens, twice; the warning comes once.
    talk = run([], env, tmp_path, stdin="uno\ndos\n/exit\n")
    assert talk.returncode == 0, talk.stderr
    warning = "[WARNING] El servidor de 'openai' (gpt-4o-mini) ignoró el límite de tokens: pidió 2, devolvió 3"
    assert talk.stderr.count(warning) == 1, talk.stderr
    assert "api says: dos" in talk.stdout
    whole = run(["chat", "hola"], env, tmp_path)  # not streamed: the fake counts 10 completion tokens
    assert "ignoró el límite de tokens: pidió 2, devolvió 10" in whole.stderr
    within = run(["chat", "hola"], openai_env(provider_server, tmp_path, LLM_MAX_TOKENS="64"), tmp_path)
    assert within.returncode == 0 and "límite de tokens" not in within.stderr


# -- §2e: log lines and notices start on a line of their own ----------------------


def test_chat_on_a_terminal_keeps_the_fallback_notice_off_the_text(
    provider_server: FakeProviderServer, tmp_path: Path
) -> None:
    env = environment(tmp_path, PATCODE_LOAD_PLUGINS="ollama,openai", LLM_FALLBACK_ORDER="ollama,openai", LLM_MAX_RETRIES="0",
                      OLLAMA_BASE_URL=provider_server.url, OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=f"{provider_server.url}/v1")
    provider_server.fault("chat", {"type": "http", "status": 500, "body": {"error": "boom"}})  # ollama fails once
    answer, status = run_pty(["chat", "hola"], env, tmp_path)
    assert status == 0, answer
    assert "api says: hola\r\n✓ Fallback exitoso a 'openai'\r\n" in answer
    assert "\r\n\r\n" not in answer.split("api says: hola")[1]  # the line is ended once, not twice


def test_ctrl_c_in_chat_puts_interrupted_on_its_own_line(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    provider_server.configure(reply=" ".join(["dragón"] * 60))
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.1})
    child = session(openai_env(provider_server, tmp_path), tmp_path, ["chat", "cuenta"])
    child.expect_exact("dragón dragón")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    output = shown(child)
    assert re.search(r"\nInterrumpido\.", output), repr(output)  # not "dragón^CInterrumpido."


def test_session_notices_of_a_cut_stream_start_their_own_line(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    child = session(groq_ollama_env(provider_server, tmp_path, LLM_MAX_RETRIES="0"), tmp_path)
    try:
        provider_server.fault("chat", {"type": "stream", "mode": "cut", "after": 3, "token_delay": 0.05})
        child.send("hola\r")
        child.expect_exact("ollama says: hola")
        child.expect_exact(PROMPT)
        output = shown(child)
    finally:
        child.close(force=True)
    # groq showed "api says:" and was cut: every notice after it begins a line.
    assert "api says:\r\n[WARNING] Provider 'groq' falló" in output, repr(output)
    assert "↻ respuesta reiniciada en ollama" in output
    assert not re.search(r"says:\[(WARNING|INFO)\]", output)


def test_an_error_after_streamed_text_starts_its_own_line(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    provider_server.fault("chat", {"type": "stream", "mode": "cut", "after": 3})
    env = openai_env(provider_server, tmp_path, LLM_STREAM_RECOVERY="error", PATCODE_LOG_LEVEL="error")  # only the error
    answer, status = run_pty(["chat", "hola"], env, tmp_path)
    assert status == 1
    assert "api says:\r\n❌ La respuesta de 'openai' se cortó tras 9 caracteres" in answer, repr(answer)


# -- success rate -----------------------------------------------------------------


def test_a_stopped_answer_is_not_a_failure_in_the_success_rate(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    child = session(groq_ollama_env(provider_server, tmp_path), tmp_path)
    try:
        for prompt in ("uno", "dos"):
            child.send(f"{prompt}\r")
            child.expect_exact(f"api says: {prompt}")
            child.expect_exact(PROMPT)
        provider_server.configure(reply=" ".join(["palabra"] * 80))
        provider_server.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.1})
        child.send("largo\r")
        child.expect_exact("palabra palabra")
        child.sendintr()
        child.expect_exact("Interrumpido.")
        child.expect_exact(PROMPT)
        child.send("/llm stats\r")
        child.expect(r"groq:\s+Requests: 3\s+Éxitos: 2\s+Fallos: 0\s+Tasa de éxito: 100\.0%[\s\S]*Detenidas por ti \(Ctrl-C\): 1")
        child.expect_exact(PROMPT)
    finally:
        child.close(force=True)


# -- first run: banner, stats labels, help ----------------------------------------


def test_first_session_without_a_groq_key(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = groq_ollama_env(provider_server, tmp_path, groq_key=False)
    empty = run(["llm", "stats"], env, tmp_path).stdout
    assert empty.splitlines()[2] == "Providers configurados: ollama"
    assert "Aún no hay peticiones en el historial." in empty  # the figures are the store's, not this session's
    talk = run([], env, tmp_path, stdin="hola\n/llm stats\n/help\n/exit\n")
    assert talk.returncode == 0, talk.stderr
    out = talk.stdout
    assert out.startswith("PatCode — provider actual: groq (sin configurar: responderá ollama).")
    assert "ollama says: hola" in out
    # groq was passed over without a request: no verdict, so no rate ("—", not 0.0 %).
    assert "groq:\n  Requests: 0\n  Éxitos: 0\n  Fallos: 0\n  Tasa de éxito: —\n" in out
    assert "ollama:\n  Requests: 1\n  Éxitos: 1\n  Fallos: 0\n  Tasa de éxito: 100.0%\n" in out
    assert "  /llm stats                  estadísticas de uso de todas las sesiones" in out
    assert "  /llm cache stats" in out and "  /llm cache clear [nombre]" in out
    assert stats_json(env, tmp_path)["groq"]["success_rate"] is None


def test_without_a_store_the_figures_are_this_sessions(tmp_path: Path) -> None:
    env = environment(tmp_path, PATCODE_LOAD_PLUGINS="ollama", LLM_STATS_STORE="off")
    talk = run([], env, tmp_path, stdin="/llm stats\n/help\n/exit\n")
    assert "Aún no hay peticiones en esta sesión." in talk.stdout
    assert "  /llm stats                  estadísticas de esta sesión (LLM_STATS_STORE=off" in talk.stdout


def test_a_cached_answer_is_marked_and_spends_nothing(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = openai_env(provider_server, tmp_path, LLM_CACHE="true")
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "usage": False})
    assert run_pty(["chat", "hola"], env, tmp_path)[1] == 0  # streamed, tokens not counted
    assert run(["chat", "adios"], env, tmp_path).stdout.startswith("[openai · gpt-4o-mini · ")  # counted: 19 / 10
    again = run(["chat", "adios"], env, tmp_path).stdout
    assert again.startswith("[openai · gpt-4o-mini · 0.00s · de la caché]\napi says: adios")
    replayed, status = run_pty(["chat", "hola"], env, tmp_path)
    assert status == 0 and "api says: hola" in replayed and "· de la caché]" in replayed
    assert len(provider_server.requests("chat")) == 2

    block = run(["llm", "stats"], env, tmp_path).stdout
    assert "  Requests: 2\n" in block and "  Aciertos de caché: 2" in block
    assert "  Tokens entrada/salida: 19 / 10 (+1 respuesta sin recuento)" in block  # the hits added nothing
    # Unknown because "hola" was not counted; the hits cost 0 and do not turn the per-model figure into $0.
    assert "  Coste: desconocido (gpt-4o-mini desconocido)" in block

    cache = run(["llm", "cache", "stats"], env, tmp_path).stdout
    assert cache.splitlines() == ["Caché de respuestas (activa para: openai):", "  openai: 2 respuestas, 29 B, 2 aciertos"]
    off = run(["llm", "cache", "stats"], {**env, "LLM_CACHE": "false"}, tmp_path).stdout
    assert off.splitlines()[0] == "Caché de respuestas (desactivada; LLM_CACHE=true la activa):"
    assert run(["llm", "cache", "clear"], env, tmp_path).stdout == "Caché vaciada (2 respuestas).\n"


# -- the spinner follows the route ------------------------------------------------


def test_the_spinner_names_the_provider_being_tried(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = groq_ollama_env(provider_server, tmp_path, LLM_MAX_RETRIES="0", LLM_FIRST_TOKEN_TIMEOUT="1.5", LLM_HEDGE="off")
    child = session(env, tmp_path)
    try:
        provider_server.fault("chat", {"type": "hang"}, {"type": "delay", "seconds": 0.6})  # groq says nothing
        child.send("hola\r")
        child.expect_exact("groq pensando...")
        child.expect_exact("[INFO] Intentando fallback a 'ollama'...")
        child.expect_exact("ollama pensando...")
        child.expect_exact("ollama says: hola")
        child.expect_exact(PROMPT)
    finally:
        child.close(force=True)


def test_the_spinner_names_both_providers_of_a_hedged_race(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = groq_ollama_env(provider_server, tmp_path, LLM_MAX_RETRIES="0", LLM_HEDGE="0.3")
    child = session(env, tmp_path)
    try:
        provider_server.fault("chat", {"type": "hang"}, {"type": "delay", "seconds": 0.8})  # groq says nothing
        child.send("hola\r")
        child.expect_exact("groq + ollama pensando...")
        child.expect_exact("ollama says: hola")
        child.expect_exact(PROMPT)
    finally:
        child.close(force=True)


def test_the_spinner_skips_a_provider_without_key(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    child = session(groq_ollama_env(provider_server, tmp_path, groq_key=False), tmp_path)
    try:
        provider_server.fault("chat", {"type": "delay", "seconds": 0.8})
        child.send("hola\r")
        child.expect_exact("ollama pensando...")
        child.expect_exact("ollama says: hola")
        child.expect_exact(PROMPT)
        assert "groq pensando" not in shown(child)
    finally:
        child.close(force=True)


def test_no_color_in_the_session_and_in_chat(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = groq_ollama_env(provider_server, tmp_path, NO_COLOR="1")
    provider_server.configure(reply="Mira:\n```python\nprint('hola')\n```\nListo.")
    child = session(env, tmp_path)
    try:
        provider_server.fault("chat", {"type": "delay", "seconds": 0.5})
        child.send("código\r")
        child.expect_exact("groq pensando...")  # the spinner, uncoloured
        child.expect_exact("│ print('hola')")
        child.expect(r"\[\d+\.\d\ds · primer token")
        child.expect_exact(PROMPT)
        transcript = shown(child)
    finally:
        child.close(force=True)
    answer, status = run_pty(["chat", "código"], env, tmp_path)
    assert status == 0 and "│ print('hola')" in answer
    for output in (transcript, answer):
        assert not [colour for colour in OUR_COLOURS if colour in output], repr(output)


# -- advice that applies to this install --------------------------------------------


def test_plot_names_the_command_that_works_here(tmp_path: Path) -> None:
    blocker = tmp_path / "no-matplotlib"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ImportError('not installed')\n", encoding="utf-8")
    env = environment(tmp_path, PATCODE_LOAD_PLUGINS="ollama", PYTHONPATH=str(blocker))
    result = run(["llm", "stats", "--plot", "uso.png"], env, tmp_path)
    assert result.returncode == 2
    # This checkout is installed in editable mode: its own [plot] extra, by path, into this very Python.
    command = f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{ROOT}[plot]')}"
    assert result.stderr.strip() == f"Para --plot instala matplotlib en el Python de PatCode: {command}"
    assert "'patcode-core[plot]'" not in result.stderr


def test_an_unknown_provider_says_how_plugins_are_installed(tmp_path: Path) -> None:
    result = run(["llm", "switch", "nadie"], environment(tmp_path), tmp_path)
    assert result.returncode == 1
    assert "'nadie' no es un provider instalado" in result.stderr
    assert "entry point del grupo 'patcode.providers'" in result.stderr
    assert f"{shlex.quote(sys.executable)} -m pip install <paquete>" in result.stderr
    assert "ollama (patcode-ollama)" in result.stderr and "groq (patcode-groq)" in result.stderr
    assert "patcode-<provider>" not in result.stderr


# -- help ----------------------------------------------------------------------------


ARGPARSE_ENGLISH = ("usage:", "positional arguments", "options:", "show this help message and exit", "show program's version")


def test_llm_help_lists_every_command_and_option_in_spanish(tmp_path: Path) -> None:
    env = environment(tmp_path, PATCODE_LOAD_PLUGINS="")
    result = run(["llm", "--help"], env, tmp_path)
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("uso: patcode llm {providers,switch,test,stats,cache} ...")
    for word in ("providers", "switch <nombre>", "test <nombre>", "stats [opciones]", "stats reset [--yes]", "cache stats",
                 "cache clear [<provider>]", "--since", "--provider", "--json", "--plot", "--yes", "-h, --help"):
        assert word in text, word
    assert "/llm" not in text.replace("/llm en la sesión interactiva", "")  # no REPL syntax
    assert not [english for english in ARGPARSE_ENGLISH if english in text]
    assert run(["llm", "stats", "--help"], env, tmp_path).stdout == text  # help asked after a subcommand too
    for args in (["--help"], ["chat", "--help"]):
        other = run(args, env, tmp_path).stdout
        assert other.startswith("uso: patcode") and "muestra esta ayuda y termina" in other
        assert not [english for english in ARGPARSE_ENGLISH if english in other], other
    missing = run(["chat"], env, tmp_path)
    assert missing.returncode == 2 and "patcode chat: error: faltan argumentos: prompt" in missing.stderr
    english = run(["llm", "--help"], {**env, "PATCODE_LANG": "en"}, tmp_path).stdout
    assert english.startswith("usage: patcode llm") and "stats options:" in english


def test_a_cut_beyond_our_own_limit_is_not_blamed_on_llm_max_tokens() -> None:
    from patcode_core.terminal.console import answer_notes
    from patcode_core.types import CompletionResult, Usage

    def cut(tokens: int) -> CompletionResult:
        return CompletionResult("...", "openai", "smollm2", "length", Usage(10, tokens), 1.0)

    assert answer_notes(cut(400), 400) == ["⚠ Respuesta cortada por el límite de tokens (LLM_MAX_TOKENS=400)"]
    assert answer_notes(cut(1999), 400) == [
        "⚠ Respuesta cortada por un límite del servidor tras 1999 tokens (ignoró LLM_MAX_TOKENS=400)"
    ]
    assert answer_notes(CompletionResult("ok", "openai", "smollm2", "stop", Usage(1, 2), 1.0), 400) == []
