"""The interactive ``patcode`` as a person uses it: a real process in a pseudo-terminal, against the loopback server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from fakes.server_process import FakeProviderServer

PATCODE = str(Path(sys.executable).with_name("patcode"))
PROMPT = "patcode>"


def spawn(server: FakeProviderServer, home: Path, **extra: str) -> pexpect.spawn:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_"))},
        "PATCODE_HOME": str(home),
        "PATCODE_LANG": "es",
        "PATCODE_LOAD_PLUGINS": "groq,ollama",
        "GROQ_API_KEY": "gsk_terminal_test_key_0000000000",
        "GROQ_BASE_URL": f"{server.url}/openai/v1",
        "OLLAMA_BASE_URL": server.url,
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position requests
        **extra,
    }
    child = pexpect.spawn(PATCODE, env=env, cwd=str(home), encoding="utf-8", dimensions=(40, 120), timeout=10)
    child.expect_exact(PROMPT)
    return child


@pytest.fixture
def session(provider_server: FakeProviderServer, tmp_path: Path) -> Iterator[pexpect.spawn]:
    child = spawn(provider_server, tmp_path)
    yield child
    child.close(force=True)


def test_a_streamed_answer_names_its_provider(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.05})
    session.send("hola que tal\r")
    session.expect_exact("── groq · openai/gpt-oss-120b")
    session.expect_exact("api says: hola que tal")
    session.expect(r"\[\d+\.\d\ds · primer token \d+\.\d\ds · 5 tokens\]")
    session.expect_exact(PROMPT)
    assert provider_server.requests("chat")[0]["body"]["stream"] is True


def test_switch_with_tab_completion_then_the_conversation_goes_on(
    session: pexpect.spawn, provider_server: FakeProviderServer
) -> None:
    session.send("primera\r")
    session.expect_exact("api says: primera")
    session.expect_exact(PROMPT)
    session.send("/llm sw\t")
    session.send("oll\t")
    session.send("\r")
    session.expect_exact("✓ Provider cambiado a 'ollama'")
    session.expect_exact(PROMPT)
    session.send("segunda\r")
    session.expect_exact("── ollama · qwen2.5-coder:1.5b")
    session.expect_exact("ollama says: segunda")
    session.expect_exact(PROMPT)
    sent = [r for r in provider_server.requests("chat") if r["path"] == "/api/chat"][0]["body"]["messages"]
    assert [m["content"] for m in sent] == ["primera", "api says: primera", "segunda"]


def test_ctrl_c_stops_the_answer_not_the_session(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    provider_server.configure(reply=" ".join(["palabra"] * 80))
    provider_server.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.1})
    session.send("cuenta algo largo\r")
    session.expect_exact("palabra palabra")
    session.sendintr()
    session.expect_exact("Interrumpido.")
    session.expect_exact(PROMPT)
    session.send("/llm stats\r")
    # A stopped answer was sent, but it is not the provider's failure.
    session.expect(r"groq:\s+Requests: 1\s+Éxitos: 0\s+Fallos: 0[\s\S]*Detenidas por ti \(Ctrl-C\): 1")
    session.expect_exact(PROMPT)
    session.send("/clear\r")
    session.expect_exact("Conversación reiniciada.")


def test_multi_line_input_is_one_prompt(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    session.send("def f():")
    session.send("\x1b\r")  # Alt+Enter: a new line in the same prompt
    session.send("    return 1\r")
    session.expect_exact("api says:")
    session.expect_exact(PROMPT)
    assert provider_server.requests("chat")[0]["body"]["messages"][-1]["content"] == "def f():\n    return 1"


def test_pasted_code_keeps_its_lines(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    session.send("\x1b[200~print(1)\nprint(2)\x1b[201~")  # bracketed paste, as a terminal sends it
    session.send("\r")
    session.expect_exact("api says:")
    session.expect_exact(PROMPT)
    assert provider_server.requests("chat")[0]["body"]["messages"][-1]["content"] == "print(1)\nprint(2)"


def test_code_blocks_are_framed(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    provider_server.configure(reply="Mira:\n```python\nprint('hola')\n```\nListo.")
    session.send("muestra código\r")
    session.expect_exact("╭─ python")
    session.expect_exact("print('hola')")
    session.expect_exact("╰─")
    session.expect_exact("Listo.")
    session.expect_exact(PROMPT)


def test_history_survives_the_session_and_ctrl_d_exits(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    first = spawn(provider_server, tmp_path)
    first.send("recuerda esto\r")
    first.expect_exact("api says: recuerda esto")
    first.expect_exact(PROMPT)
    first.sendeof()
    first.expect(pexpect.EOF)
    first.close()
    assert first.exitstatus == 0
    second = spawn(provider_server, tmp_path)
    second.send("\x1b[A")  # the Up arrow brings back the last session's line
    second.expect_exact("recuerda esto")
    second.sendintr()  # Ctrl-C at the prompt ends the session cleanly
    second.expect(pexpect.EOF)
    second.close()
    assert second.exitstatus == 0
    assert "recuerda esto" in (tmp_path / "history").read_text(encoding="utf-8")


def test_one_shot_chat_streams_on_a_terminal(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "PATCODE_"))}
    env.update({"PATCODE_LANG": "en", "PATCODE_LOAD_PLUGINS": "ollama", "OLLAMA_BASE_URL": provider_server.url, "TERM": "xterm"})
    child = pexpect.spawn(PATCODE, ["chat", "hi there"], env=env, cwd=str(tmp_path), encoding="utf-8", timeout=10)
    child.expect_exact("── ollama · qwen2.5-coder:1.5b")
    child.expect_exact("ollama says: hi there")
    child.expect(r"first token \d+\.\d\ds")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_spinner_until_the_first_token(session: pexpect.spawn, provider_server: FakeProviderServer) -> None:
    provider_server.fault("chat", {"type": "delay", "seconds": 0.8})
    session.send("piensa despacio\r")
    session.expect_exact("groq pensando...")
    session.expect_exact("── groq · openai/gpt-oss-120b")
    session.expect_exact("api says: piensa despacio")
    session.expect_exact(PROMPT)


def test_english_session_and_confirmation(provider_server: FakeProviderServer, tmp_path: Path) -> None:
    child = spawn(provider_server, tmp_path, PATCODE_LANG="en")
    child.send("hello\r")
    child.expect_exact("api says: hello")
    child.expect_exact(PROMPT)
    child.send("/llm stats reset\r")
    child.expect_exact("Delete the whole usage history (every session)? [y/N]")
    child.send("y\r")
    child.expect_exact("History deleted (1 rows).")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
