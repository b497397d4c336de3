"""The real ``patcode`` process with no key and no server: the local model answers, last in the fallback order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
from fakes.server_process import closed_port_url

_PREFIXES = ("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_", "LOCAL_")


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """No keys, Ollama on a closed loopback port, no fallback order: only ``local`` can answer."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    return {
        **base,
        "PATCODE_LANG": "es",
        "PATCODE_HOME": str(home / "patcode-home"),
        "OLLAMA_BASE_URL": closed_port_url(),
        "OPENAI_BASE_URL": f"{closed_port_url()}/v1",
        "GROQ_BASE_URL": f"{closed_port_url()}/openai/v1",
        "LLM_MAX_TOKENS": "32",
        # The chain the documentation shows; other installed plugins would add their own "omitido" lines.
        "PATCODE_LOAD_PLUGINS": "groq,ollama,openai,local",
        **extra,
    }


def run_offline(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``patcode ARGS`` as a real process with no keys and every network provider's port closed."""
    return subprocess.run(
        [sys.executable, "-m", "patcode_core", *args],
        env=offline_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chat_with_no_keys_is_answered_by_local(tmp_path: Path) -> None:
    result = run_offline(["chat", "hola"], tmp_path)
    assert result.returncode == 0, result.stderr
    header, *answer = result.stdout.splitlines()
    assert header.startswith("[local · smollm2-135m-instruct · ") and "".join(answer).strip()
    lines = [line for line in result.stderr.splitlines() if not line.startswith("⚠ Respuesta cortada por el límite de tokens")]
    assert lines[2].startswith("[WARNING] Provider 'ollama' falló: No se pudo conectar a http://127.0.0.1:")
    assert lines[:2] + lines[3:] == [
        "[INFO] Provider 'groq' omitido: GROQ_API_KEY no está configurada",
        "[INFO] Intentando fallback a 'ollama'...",
        "[INFO] Intentando fallback a 'openai'...",
        "[INFO] Provider 'openai' omitido: OPENAI_API_KEY no está configurada",
        "[INFO] Intentando fallback a 'local'...",
        "✓ Fallback exitoso a 'local'",
    ]


def test_llm_providers_lists_local_last_and_ready(tmp_path: Path) -> None:
    result = run_offline(["llm", "providers"], tmp_path)
    assert result.stdout.splitlines()[-1] == "  ✅ local · smollm2-135m-instruct", result.stdout + result.stderr


def test_ctrl_c_stops_a_streamed_local_answer_at_once(tmp_path: Path) -> None:
    """On a terminal the answer streams; Ctrl-C mid-answer ends the process within a couple of seconds."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "patcode_core", "chat", "Write a very long story about a dragon."],
        env=offline_env(tmp_path, LLM_MAX_TOKENS="2000"),
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.expect_exact("── local · smollm2-135m-instruct")  # the answer starts
    child.expect(r"\w+ \w+ \w+ \w+")  # a few tokens
    child.sendintr()
    sent = time.perf_counter()
    child.expect(pexpect.EOF, timeout=10)
    tail = child.before or ""
    child.close()
    assert time.perf_counter() - sent < 3
    assert child.exitstatus == 130 and "Interrumpido." in tail and "Traceback" not in tail
    assert "Respuesta cortada" not in tail  # stopped mid-answer, not at the 2000-token limit


def test_ctrl_c_stops_a_whole_local_answer_at_once(tmp_path: Path) -> None:
    """Into a pipe the answer is generated whole; Ctrl-C while the model writes it ends the process at once."""
    process = subprocess.Popen(
        [sys.executable, "-m", "patcode_core", "chat", "Write a very long story about a dragon."],
        env=offline_env(tmp_path, LLM_MAX_TOKENS="2000"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    while "Intentando fallback a 'local'" not in process.stderr.readline():
        pass
    time.sleep(1.0)  # the model is writing: 2000 tokens take far longer
    process.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    stdout, stderr = process.communicate(timeout=30)
    assert time.perf_counter() - sent < 3
    assert process.returncode == 130 and "Traceback" not in stderr and stdout == "", stderr
