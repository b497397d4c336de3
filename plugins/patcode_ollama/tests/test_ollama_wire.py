"""Ollama's native API (/api/chat, /api/tags) and its errors, with respx (no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from ollama_payloads import CHAT, DONE, piece

from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

BASE = "http://localhost:11434"


TAGS = {
    "models": [
        {
            "name": "qwen2.5-coder:1.5b",
            "model": "qwen2.5-coder:1.5b",
            "modified_at": "2023-11-04T14:56:49.277302595-07:00",
            "size": 7365960935,
            "digest": "9f438cb9cd581fc025612d27f7c1a6669ff83a8bb0ed86c94fcf4c5440555697",
            "details": {"format": "gguf", "family": "qwen2", "families": None, "parameter_size": "1.5B", "quantization_level": "Q4_K_M"},
        },
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2024-09-12T21:17:29Z", "size": 1, "digest": "x", "details": {}},
    ]
}


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> LLMManager:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "ollama")
    # These tests read one answer each; retries have their own tests in tests/test_resilience*.py.
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    return LLMManager(host=PluginHost.discover(), env_file=None)


def test_host_lists_ollama_as_installed() -> None:
    assert "ollama" in PluginHost.discover().providers


@respx.mock
async def test_chat_request_and_answer(manager: LLMManager) -> None:
    route = respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(200, json=CHAT))
    result = await manager.complete("hola", temperature=0.1, max_tokens=64)
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "model": "qwen2.5-coder:1.5b",
        "messages": [{"role": "user", "content": "hola"}],
        "stream": False,
        "options": {"temperature": 0.1, "num_predict": 64},
    }
    assert "authorization" not in route.calls.last.request.headers
    assert (result.text, result.provider, result.finish_reason) == ("Hello! How are you today?", "ollama", "stop")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (26, 298)
    assert result.extra["eval_duration"] == 4799921000


@pytest.mark.parametrize(
    ("status", "body", "kind", "suggestion"),
    [
        (404, {"error": "model 'qwen2.5-coder:1.5b' not found"}, ErrorKind.MODEL_NOT_FOUND, "ollama pull qwen2.5-coder:1.5b"),
        (404, {"error": 'model "qwen2.5-coder:1.5b" not found, try pulling it first'}, ErrorKind.MODEL_NOT_FOUND, "ollama pull qwen2.5-coder:1.5b"),
        (400, {"error": "invalid options: num_predict"}, ErrorKind.BAD_REQUEST, "Revisa los parámetros"),
        (500, {"error": "llama runner process has terminated: signal: killed"}, ErrorKind.SERVER_ERROR, "Reintenta"),
        (503, {"error": "server busy, please try again.  maximum pending requests exceeded"}, ErrorKind.SERVER_ERROR, "Reintenta"),
        (401, {"error": "unauthorized"}, ErrorKind.AUTHENTICATION, "Revisa OLLAMA_BASE_URL y las credenciales"),
        (403, {"error": "forbidden"}, ErrorKind.AUTHENTICATION, "Revisa OLLAMA_BASE_URL y las credenciales"),
        (429, {"error": "too many requests"}, ErrorKind.RATE_LIMIT, "Espera un momento"),
    ],
)
@respx.mock
async def test_errors(manager: LLMManager, status: int, body: dict, kind: ErrorKind, suggestion: str) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is kind and suggestion in caught.value.suggestion


@respx.mock
async def test_model_not_found_message(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(404, json={"error": "model 'qwen2.5-coder:1.5b' not found"}))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert str(caught.value) == (
        "el modelo 'qwen2.5-coder:1.5b' no está descargado en Ollama. Descarga el modelo: ollama pull qwen2.5-coder:1.5b"
    )


@respx.mock
async def test_connection_refused_suggests_ollama_serve(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(side_effect=httpx.ConnectError("All connection attempts failed"))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.UNREACHABLE
    assert str(caught.value) == "No se pudo conectar a http://localhost:11434. Asegúrate que Ollama esté corriendo: ollama serve"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(200, json={**CHAT, "done": False}),
        httpx.Response(200, json={**CHAT, "message": {"role": "assistant", "content": ""}}),
        httpx.Response(200, json={"model": "x"}),
    ],
)
@respx.mock
async def test_malformed_answers(manager: LLMManager, response: httpx.Response) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=response)
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.MALFORMED_RESPONSE


@respx.mock
async def test_in_band_error_is_an_error(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(200, json={"error": "unexpected EOF"}))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.SERVER_ERROR and "unexpected EOF" in caught.value.message


@respx.mock
async def test_availability_checks_the_model_is_pulled(manager: LLMManager, monkeypatch: pytest.MonkeyPatch) -> None:
    route = respx.get(f"{BASE}/api/tags").mock(return_value=httpx.Response(200, json=TAGS))
    answer = await manager.availability("ollama")
    assert answer.available and "llama3.2:latest" in answer.models
    route.mock(return_value=httpx.Response(200, json={"models": []}))
    answer = await manager.availability("ollama")
    assert not answer.available and answer.kind is ErrorKind.MODEL_NOT_FOUND
    assert answer.suggestion == "Descarga el modelo: ollama pull qwen2.5-coder:1.5b"
    route.mock(side_effect=httpx.ConnectError("refused"))
    answer = await manager.availability("ollama")
    assert answer.kind is ErrorKind.UNREACHABLE and answer.suggestion == "Asegúrate que Ollama esté corriendo: ollama serve"


@respx.mock
async def test_untagged_model_matches_latest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "ollama")
    monkeypatch.setenv("OLLAMA_MODEL", "llama3.2")
    respx.get(f"{BASE}/api/tags").mock(return_value=httpx.Response(200, json=TAGS))
    assert (await LLMManager(host=PluginHost.discover(), env_file=None).availability("ollama")).available


@respx.mock
async def test_rate_limit_carries_the_wait_the_server_asked(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(
        return_value=httpx.Response(429, json={"error": "too many requests"}, headers={"Retry-After": "7"})
    )
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retry_after == 7.0
    assert caught.value.suggestion == "El provider pide esperar 7.0s antes de reintentar"


@respx.mock
async def test_optional_key_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "ollama")
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key-0123456789abcdef")
    monkeypatch.setenv("OLLAMA_BASE_URL", "https://ollama.com")
    route = respx.post("https://ollama.com/api/chat").mock(return_value=httpx.Response(200, json=CHAT))
    async with LLMManager(host=PluginHost.discover(), env_file=None) as manager:
        await manager.complete("hola")
    assert route.calls.last.request.headers["authorization"] == "Bearer ollama-cloud-key-0123456789abcdef"


def ndjson(*lines: dict) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()






@respx.mock
async def test_stream_lines_and_final_counts(manager: LLMManager) -> None:
    route = respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(
        200, headers={"content-type": "application/x-ndjson"}, content=ndjson(piece("The"), piece(" sky"), piece(" is blue."), DONE)))
    events = [event async for event in manager.stream("hola")]
    result = events[-1]
    assert result.text == "The sky is blue." and (result.usage.input_tokens, result.usage.output_tokens) == (26, 282)
    assert result.finish_reason == "stop" and result.extra["eval_duration"] == 4535599000
    assert json.loads(route.calls.last.request.content)["stream"] is True


@respx.mock
async def test_an_error_line_inside_a_200_stream_is_an_error(manager: LLMManager) -> None:
    from patcode_core.errors import StreamInterruptedError

    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(
        200, headers={"content-type": "application/x-ndjson"},
        content=ndjson(piece("The"), {"error": "an error was encountered while running the model: unexpected EOF"})))
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in manager.stream("hola", fallback=False):
            pass
    assert caught.value.partial_text == "The"
    assert caught.value.failures[-1].kind is ErrorKind.SERVER_ERROR
    assert "unexpected EOF" in caught.value.failures[-1].message


@respx.mock
async def test_stream_of_a_model_not_pulled(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(404, json={"error": "model 'qwen2.5-coder:1.5b' not found"}))
    with pytest.raises(ProviderError) as caught:
        async for _ in manager.stream("hola", fallback=False):
            pass
    assert caught.value.kind is ErrorKind.MODEL_NOT_FOUND and "ollama pull qwen2.5-coder:1.5b" in caught.value.suggestion


# -- pointed at an OpenAI-compatible server (llama.cpp's, vLLM, LM Studio) -------------------

NOT_FOUND = {"detail": "Not Found"}  # what a FastAPI-based server answers for /api/chat


@respx.mock
async def test_an_openai_compatible_server_gets_the_hint_to_use_the_openai_plugin(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(404, json=NOT_FOUND))
    respx.get(f"{BASE}/api/tags").mock(return_value=httpx.Response(404, json=NOT_FOUND))
    respx.get(f"{BASE}/v1/models").mock(return_value=httpx.Response(200, json={"object": "list", "data": [{"id": "smollm2"}]}))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    status = await manager.availability("ollama")
    expected = (
        "http://localhost:11434 no tiene la API de Ollama (/api/...), pero parece un servidor compatible con OpenAI: "
        "usa el plugin openai con OPENAI_BASE_URL=http://localhost:11434/v1"
    )
    assert caught.value.kind is ErrorKind.ENDPOINT_NOT_FOUND and caught.value.suggestion == expected
    assert not status.available and status.suggestion == expected


@respx.mock
async def test_a_plain_404_keeps_its_own_advice(manager: LLMManager) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(404, text="404 page not found"))
    respx.get(f"{BASE}/v1/models").mock(return_value=httpx.Response(404, text="404 page not found"))
    with pytest.raises(ProviderError) as caught:
        await manager.complete("hola", fallback=False)
    assert caught.value.kind is ErrorKind.ENDPOINT_NOT_FOUND and caught.value.suggestion == "Verifica OLLAMA_BASE_URL"
