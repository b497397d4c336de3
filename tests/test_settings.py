"""Settings: every documented variable, .env, defaults, composition, clear errors, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from patcode_core.config import FallbackEntry, load_settings, parse_fallback_order
from patcode_core.errors import ConfigError
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost

ALL_VARIABLES = {
    "LLM_DEFAULT_PROVIDER": "ollama",
    "LLM_AUTO_FALLBACK": "false",
    "LLM_FALLBACK_ORDER": "ollama,groq/openai/gpt-oss-20b",
    "LLM_TEMPERATURE": "0.2",
    "LLM_MAX_TOKENS": "2048",
    "GROQ_API_KEY": "gsk_test_not_a_real_key_000000",
    "GROQ_MODEL": "openai/gpt-oss-20b",
    "GROQ_TIMEOUT": "12.5",
    "GROQ_BASE_URL": "http://127.0.0.1:8081/openai/v1/",
    "OLLAMA_BASE_URL": "http://127.0.0.1:11435",
    "OLLAMA_MODEL": "qwen2.5-coder:7b",
    "OLLAMA_TIMEOUT": "60",
    "OPENAI_API_KEY": "sk-test-not-a-real-key-000000",
    "OPENAI_MODEL": "gpt-4.1-mini",
    "OPENAI_TIMEOUT": "45",
    "OPENAI_BASE_URL": "http://127.0.0.1:8082/v1",
}


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.discover()


def test_defaults(host: PluginHost) -> None:
    llm = load_settings(host, env_file=None).llm
    assert llm.default_provider is None and llm.auto_fallback is True
    assert llm.temperature == 0.7 and llm.max_tokens == 1024
    assert llm.groq.model == "openai/gpt-oss-120b" and llm.groq.base_url == "https://api.groq.com/openai/v1"
    assert llm.ollama.model == "qwen2.5-coder:1.5b" and llm.ollama.base_url == "http://localhost:11434"
    assert llm.openai.model == "gpt-4o-mini" and llm.openai.base_url == "https://api.openai.com/v1"
    assert {llm.groq.timeout, llm.ollama.timeout, llm.openai.timeout} == {30.0}
    assert llm.groq_api_key is None and llm.openai_api_key is None


def test_every_documented_variable_from_a_dotenv_file(host: PluginHost, clean_environment: Path) -> None:
    (clean_environment / ".env").write_text(
        "# comentario\n" + "\n".join(f"{k}={v}" for k, v in ALL_VARIABLES.items()) + "\n", encoding="utf-8"
    )
    llm = load_settings(host).llm
    assert llm.default_provider == "ollama" and llm.auto_fallback is False
    assert llm.fallback_entries == [FallbackEntry("ollama"), FallbackEntry("groq", "openai/gpt-oss-20b")]
    assert llm.temperature == 0.2 and llm.max_tokens == 2048
    assert llm.groq_api_key.get_secret_value() == ALL_VARIABLES["GROQ_API_KEY"]
    assert llm.groq.model == "openai/gpt-oss-20b" and llm.groq_timeout == 12.5
    assert llm.groq.base_url == "http://127.0.0.1:8081/openai/v1"
    assert (llm.ollama.base_url, llm.ollama.model, llm.ollama.timeout) == ("http://127.0.0.1:11435", "qwen2.5-coder:7b", 60)
    assert llm.openai.api_key.get_secret_value() == ALL_VARIABLES["OPENAI_API_KEY"]
    assert (llm.openai.model, llm.openai.timeout, llm.openai.base_url) == ("gpt-4.1-mini", 45, "http://127.0.0.1:8082/v1")


def test_environment_wins_over_dotenv(host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_environment / ".env").write_text("OLLAMA_MODEL=from-file\n", encoding="utf-8")
    monkeypatch.setenv("OLLAMA_MODEL", "from-env")
    assert load_settings(host).llm.ollama.model == "from-env"


def test_documented_programmatic_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_example_value_123456")
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "groq")
    from patcode_core.config import settings

    settings.reload()
    assert settings.llm.default_provider == "groq"
    assert settings.llm.auto_fallback is True
    assert settings.llm.groq_api_key.get_secret_value() == "gsk_example_value_123456"
    assert settings.llm.groq.api_key == settings.llm.groq_api_key
    assert "gsk_example_value_123456" not in repr(settings.llm.groq) + str(settings.llm.groq_api_key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("groq,ollama/qwen2.5-coder:7b,openai/gpt-4o-mini",
         [FallbackEntry("groq"), FallbackEntry("ollama", "qwen2.5-coder:7b"), FallbackEntry("openai", "gpt-4o-mini")]),
        ("groq/openai/gpt-oss-120b", [FallbackEntry("groq", "openai/gpt-oss-120b")]),
        (" Groq , ,ollama/ ", [FallbackEntry("groq"), FallbackEntry("ollama")]),
        ("", []),
    ],
)
def test_fallback_order_parsing(text: str, expected: list[FallbackEntry]) -> None:
    assert parse_fallback_order(text) == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LLM_TEMPERATURE", "3", "LLM_TEMPERATURE='3' no es válido: debe ser menor o igual que 2"),
        ("LLM_MAX_TOKENS", "mucho", "LLM_MAX_TOKENS='mucho' no es válido: debe ser un número entero"),
        ("LLM_AUTO_FALLBACK", "quizas", "LLM_AUTO_FALLBACK='quizas' no es válido: debe ser true o false"),
    ],
)
def test_bad_core_values_name_variable_value_and_accepted(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    text = str(caught.value)
    assert text.startswith(message)
    assert "Corrige el valor en tu .env o en el entorno" in text
    assert "pydantic" not in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("provider", "variable", "value", "message"),
    [
        ("groq", "GROQ_TIMEOUT", "abc", "GROQ_TIMEOUT='abc' no es válido: debe ser un número"),
        ("ollama", "OLLAMA_TIMEOUT", "-5", "OLLAMA_TIMEOUT='-5' no es válido: debe ser mayor que 0"),
        ("ollama", "OLLAMA_BASE_URL", "localhost:11434",
         "OLLAMA_BASE_URL='localhost:11434' no es válido: debe ser una URL http:// o https://"),
        ("openai", "OPENAI_BASE_URL", "ftp://example.test",
         "OPENAI_BASE_URL='ftp://example.test' no es válido: debe ser una URL"),
    ],
)
def test_bad_provider_values_put_only_that_provider_out(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, provider: str, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    llm = load_settings(host, env_file=None).llm
    assert provider not in llm.providers and set(llm.problems) == {provider}
    assert llm.problems[provider].startswith(message)
    assert "pydantic" not in llm.problems[provider] and "Traceback" not in llm.problems[provider]
    assert set(llm.providers) == set(host.providers) - {provider}


def test_all_bad_values_are_reported_at_once(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TEMPERATURE", "x")
    monkeypatch.setenv("LLM_MAX_TOKENS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    assert "LLM_TEMPERATURE='x'" in str(caught.value) and "LLM_MAX_TOKENS='0'" in str(caught.value)


def test_unknown_default_provider_lists_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_DEFAULT_PROVIDER", "claude")
    with pytest.raises(ConfigError) as caught:
        LLMManager(env_file=None)
    assert str(caught.value).startswith(
        "LLM_DEFAULT_PROVIDER='claude' no es un provider instalado. Instalados: groq, ollama, openai"
    )


def test_groq_key_without_gsk_prefix_warns_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "sk-wrong-provider-key-123456")
    LLMManager(env_file=None)
    err = capsys.readouterr().err
    assert "[WARNING] GROQ_API_KEY no parece una clave de Groq (debería empezar con 'gsk_')" in err
    assert "sk-wrong-provider-key-123456" not in err


def test_blank_key_counts_as_unset(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "  ")
    assert load_settings(host, env_file=None).llm.groq_api_key is None


def test_a_secret_is_never_echoed_in_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr
    from pydantic_settings import SettingsConfigDict

    from patcode_core.config import describe_validation_error
    from patcode_core.provider_settings import ProviderSettings

    class Strict(ProviderSettings):
        model_config = SettingsConfigDict(env_prefix="STRICT_")
        api_key: SecretStr = SecretStr("")
        base_url: str = "http://x.test"

    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        Strict(api_key=12345678901234)  # type: ignore[arg-type]
    lines = describe_validation_error(Strict, caught.value)
    assert lines and "12345678901234" not in " ".join(lines) and "STRICT_API_KEY='***'" in lines[0]


def test_every_setting_is_in_the_documented_table() -> None:
    """docs/README.md lists every LLM_* variable and every field of each installed plugin's settings."""
    import tomllib
    from pathlib import Path

    from patcode_core.config import LLMSettings
    from patcode_core.plugins import PluginHost

    root = Path(__file__).parents[1]
    text = (root / "docs" / "README.md").read_text(encoding="utf-8")
    names = [f"LLM_{field.upper()}" for field in LLMSettings.model_fields]
    # The bundled plugins are documented here; a third-party plugin installed beside them documents itself.
    bundled = {
        entry
        for project in root.glob("plugins/*/pyproject.toml")
        for entry in tomllib.loads(project.read_text(encoding="utf-8"))["project"]["entry-points"]["patcode.providers"]
    }
    for info in PluginHost.discover().providers.values():
        if info.name not in bundled:
            continue
        prefix = str(info.settings_class.model_config.get("env_prefix", ""))
        names += [f"{prefix}{field}".upper() for field in info.settings_class.model_fields]
    missing = [name for name in names if f"| `{name}` |" not in text]
    assert missing == []
