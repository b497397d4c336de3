"""The real ``patcode`` process: one-shot commands, exit codes, the interactive session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.server_process import FakeProviderServer, closed_port_url

#: The three network providers these tests are about; the embedded model (patcode-local) has its own tests.
NETWORK_PLUGINS = "groq,ollama,openai"


def run(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "LOCAL_", "PATCODE_"))}
    return subprocess.run(
        [sys.executable, "-m", "patcode_core", *args],
        env={**base, "PATCODE_LANG": "es", "PATCODE_HOME": str(cwd / "patcode-home"), "PATCODE_LOAD_PLUGINS": NETWORK_PLUGINS, **env},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def loopback_env(url: str, **overrides: str) -> dict[str, str]:
    return {
        "GROQ_API_KEY": "gsk_cli_test_key_000000000",
        "GROQ_BASE_URL": f"{url}/openai/v1",
        "OPENAI_BASE_URL": f"{url}/v1",
        "OLLAMA_BASE_URL": url,
        **overrides,
    }


def test_help_and_version(tmp_path: Path) -> None:
    result = run(["--help"], {}, tmp_path)
    assert result.returncode == 0 and "chat" in result.stdout and "llm" in result.stdout
    from patcode_core import __version__

    assert run(["--version"], {}, tmp_path).stdout == f"patcode {__version__}\n"


def test_chat_answers_and_names_the_provider(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    result = run(["chat", "hola"], loopback_env(provider_server.url), tmp_path)
    assert result.returncode == 0, result.stderr
    header, text = result.stdout.splitlines()[:2]
    assert header.startswith("[groq · openai/gpt-oss-120b · ") and text == "api says: hola"


def test_chat_falls_back_and_shows_it(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = loopback_env(provider_server.url, GROQ_BASE_URL=closed_port_url())
    result = run(["chat", "hola"], env, tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("[ollama · qwen2.5-coder:1.5b")
    assert "[INFO] Intentando fallback a 'ollama'..." in result.stderr
    assert "✓ Fallback exitoso a 'ollama'" in result.stderr


def test_chat_failure_exits_one_without_traceback(tmp_path: Path) -> None:
    result = run(["chat", "hola"], {"OLLAMA_BASE_URL": closed_port_url()}, tmp_path)
    assert result.returncode == 1
    assert "❌ Todos los providers fallaron:" in result.stderr
    assert "Asegúrate que Ollama esté corriendo: ollama serve" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLM_REQUEST_DEADLINE": "rapido"}, "❌ LLM_REQUEST_DEADLINE='rapido' no es válido: debe ser un número"),
        ({"LLM_DEFAULT_PROVIDER": "claude"}, "❌ LLM_DEFAULT_PROVIDER='claude' no es un provider instalado. Instalados: groq, ollama, openai"),
    ],
)
def test_bad_configuration_exits_two_with_one_message(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run(["llm", "providers"], env, tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


def test_a_bad_provider_value_takes_only_that_provider_out(tmp_path: Path) -> None:
    result = run(["llm", "providers"], {"GROQ_TIMEOUT": "rapido"}, tmp_path)
    groq = next(line for line in result.stdout.splitlines() if "groq" in line)
    assert groq.startswith("  ❌ groq") and "GROQ_TIMEOUT='rapido' no es válido: debe ser un número" in groq
    assert any(line.startswith("  ❌ ollama") or line.startswith("  ✅ ollama") for line in result.stdout.splitlines())
    assert "Traceback" not in result.stderr


def test_bad_dotenv_value_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OLLAMA_BASE_URL=localhost:11434\n", encoding="utf-8")
    result = run(["chat", "hola"], {}, tmp_path)
    # A provider's bad value takes only that provider out: the call fails over, and the reason is shown.
    assert result.returncode == 1 and "OLLAMA_BASE_URL='localhost:11434' no es válido" in result.stderr


def test_unreadable_dotenv_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"GROQ_API_KEY=\xff\xfe\n")
    result = run(["llm", "stats"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("❌ No se pudo leer .env (UnicodeDecodeError:")
    assert "debe ser un archivo de texto UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_llm_providers(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    result = run(["llm", "providers"], loopback_env(provider_server.url), tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "Providers LLM:",
        "  ✅ groq (actual) · openai/gpt-oss-120b",
        "  ✅ ollama · qwen2.5-coder:1.5b",
        "  ❌ openai · gpt-4o-mini — OPENAI_API_KEY no está configurada. Define OPENAI_API_KEY en tu .env",
    ]


def test_llm_test_and_switch_persist(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = loopback_env(provider_server.url)
    tested = run(["llm", "test", "ollama"], env, tmp_path)
    assert tested.returncode == 0 and tested.stdout.startswith("✅ ollama · qwen2.5-coder:1.5b respondió en ")
    (tmp_path / ".env").write_text("OLLAMA_MODEL=qwen2.5-coder:1.5b\nLLM_DEFAULT_PROVIDER=groq\n", encoding="utf-8")
    switched = run(["llm", "switch", "ollama"], env, tmp_path)
    assert switched.returncode == 0 and "✓ Provider cambiado a 'ollama'" in switched.stdout
    assert (tmp_path / ".env").read_text(encoding="utf-8") == "OLLAMA_MODEL=qwen2.5-coder:1.5b\nLLM_DEFAULT_PROVIDER=ollama\n"
    again = run(["chat", "hola"], env, tmp_path)
    assert again.stdout.startswith("[ollama")
    unknown = run(["llm", "switch", "nadie"], env, tmp_path)
    assert unknown.returncode == 1 and "'nadie' no es un provider instalado" in unknown.stderr


def test_llm_stats_block(tmp_path: Path) -> None:
    result = run(["llm", "stats"], {"OLLAMA_BASE_URL": closed_port_url()}, tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[:4] == [
        "📊 Estadísticas LLM",
        "Provider actual: groq",
        "Providers configurados: ollama",
        "Auto-fallback: activado",
    ]


def test_interactive_session(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    script = "hola\n/llm switch ollama\nsegunda pregunta\n/llm stats\n/nada\n/help\n/exit\n"
    result = run([], loopback_env(provider_server.url), tmp_path, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "PatCode — provider actual: groq" in out
    assert "api says: hola" in out
    assert "✓ Provider cambiado a 'ollama'" in out
    assert "ollama says: segunda pregunta" in out
    assert "groq:\n  Requests: 1\n  Éxitos: 1\n  Fallos: 0\n  Tasa de éxito: 100.0%" in out
    assert "ollama:\n  Requests: 1" in out
    assert "/llm switch <nombre>" in out
    assert "Comando desconocido: /nada" in result.stderr
    ollama_chat = [r for r in provider_server.requests("chat") if r["path"] == "/api/chat"][0]
    assert [m["content"] for m in ollama_chat["body"]["messages"]] == ["hola", "api says: hola", "segunda pregunta"]
    assert not (tmp_path / ".env").exists()


def test_interactive_session_ends_on_eof(tmp_path: Path) -> None:
    result = run([], {"OLLAMA_BASE_URL": closed_port_url()}, tmp_path, stdin="")
    assert result.returncode == 0


def test_english(tmp_path: Path) -> None:
    result = run(["chat", "hi"], {"PATCODE_LANG": "en", "OLLAMA_BASE_URL": closed_port_url()}, tmp_path)
    assert "❌ Every provider failed:" in result.stderr and "Make sure Ollama is running: ollama serve" in result.stderr


def test_stats_last_across_runs(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    import json

    env = loopback_env(provider_server.url)
    for prompt in ("uno", "dos"):
        assert run(["chat", prompt], env, tmp_path).returncode == 0
    assert run(["chat", "tres", "--provider", "ollama"], env, tmp_path).returncode == 0
    block = run(["llm", "stats"], env, tmp_path).stdout
    groq = block.split("groq:")[1].split("ollama:")[0]
    assert "Requests: 2\n  Éxitos: 2\n  Fallos: 0\n  Tasa de éxito: 100.0%" in groq
    assert "Latencia p50/p95: " in groq and "Tokens entrada/salida: 38 / 20" in groq
    assert "Coste: $0.0000 (openai/gpt-oss-120b $0.0000)" in groq
    assert "Coste: $0.0000 (qwen2.5-coder:1.5b $0.0000)" in block.split("ollama:")[1]
    data = json.loads(run(["llm", "stats", "--json", "--provider", "groq"], env, tmp_path).stdout)
    [groq_row] = data["providers"]
    assert (groq_row["provider"], groq_row["requests"], groq_row["input_tokens"]) == ("groq", 2, 38)
    assert groq_row["cost"] == pytest.approx((38 * 0.15 + 20 * 0.75) / 1_000_000)
    future = json.loads(run(["llm", "stats", "--json", "--since", "2999-01-01"], env, tmp_path).stdout)
    assert future["providers"] == []
    bad = run(["llm", "stats", "--since", "ayer"], env, tmp_path)
    assert bad.returncode == 2 and "--since 'ayer' no es válido" in bad.stderr


def test_stats_plot_and_reset_with_confirmation(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = loopback_env(provider_server.url)
    run(["chat", "hola"], env, tmp_path)
    plotted = run(["llm", "stats", "--plot", "usage.png"], env, tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "usage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = run(["llm", "stats", "reset"], env, tmp_path, stdin="n\n")
    assert "¿Borrar todo el historial de uso" in kept.stdout and "Historial conservado." in kept.stdout
    assert "Requests: 1" in run(["llm", "stats"], env, tmp_path).stdout
    gone = run(["llm", "stats", "reset"], env, tmp_path, stdin="s\n")
    assert "Historial borrado (1 registros)." in gone.stdout
    assert "Aún no hay peticiones" in run(["llm", "stats"], env, tmp_path).stdout


def test_cache_commands(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = loopback_env(provider_server.url, LLM_CACHE="true", OLLAMA_CACHE="false")
    for _ in range(2):
        assert run(["chat", "hola"], env, tmp_path).stdout.startswith("[groq")
    assert len(provider_server.requests("chat")) == 1  # the second answer came from the cache, in a new process
    shown = run(["llm", "cache", "stats"], env, tmp_path).stdout
    assert "Caché de respuestas (activa para: groq, openai):" in shown and "groq: 1 respuesta, " in shown and "1 acierto" in shown
    assert "Caché vaciada (1 respuesta)." in run(["llm", "cache", "clear", "groq"], env, tmp_path).stdout
    run(["chat", "hola"], env, tmp_path)
    assert len(provider_server.requests("chat")) == 2


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_prompt_is_a_usage_error(tmp_path: Path, prompt: str) -> None:
    result = run(["chat", prompt], {"PATCODE_LOAD_PLUGINS": "ollama"}, tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("❌ El prompt está vacío")
    assert "Traceback" not in result.stderr
