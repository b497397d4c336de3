"""Settings hardening (issue 9): per-provider isolation, URLs, keys, finite numbers, PATCODE_*, .env read once, secrets."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from helpers import FakeProvider, host_with
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from patcode_core import config, redact
from patcode_core.accounting.prices import parse_price_overrides
from patcode_core.config import DEFAULT_MAX_RESPONSE_BYTES, LLMSettings, check_patcode_environment, load_settings
from patcode_core.dotenv_file import parse_dotenv, read_dotenv
from patcode_core.errors import ConfigError
from patcode_core.i18n import language_from_setting
from patcode_core.plugins import PluginHost
from patcode_core.provider_settings import ProviderSettings, check_base_url

KEY = "gsk_hardening_test_key_0000000"


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.discover()


def provider(name: str, settings_class: type[ProviderSettings]) -> FakeProvider:
    fake = FakeProvider(name)
    fake.settings_class = settings_class
    return fake


class AcmeSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="ACME_")
    base_url: str = "https://api.acme.test/v1"
    #: A plugin's own float and secret: the core's checks must reach them too.
    temperature_bias: float = 0.0
    signing_secret: SecretStr | None = None


class RaisingSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="RAISING_")
    base_url: str = "https://api.raising.test"

    @field_validator("model")
    @classmethod
    def _explode(cls, value: str) -> str:
        raise RuntimeError(f"plugin bug with key {KEY}\nsecond line of the traceback")


class NoBaseUrlSettings(ProviderSettings):
    """A plugin that never sets ``base_url``: the base class default ``""`` applies."""

    model_config = SettingsConfigDict(env_prefix="BARE_")
    model: str = "bare-1"


# -- 1. per-provider isolation ----------------------------------------------------------------


def test_a_bad_provider_value_leaves_the_others_working(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_TIMEOUT", "rapido")
    llm = load_settings(host, env_file=None).llm
    assert set(llm.providers) == set(host.providers) - {"groq"}
    assert llm.problems == {"groq": "GROQ_TIMEOUT='rapido' no es válido: debe ser un número"}
    assert llm.openai.model == "gpt-4o-mini"


def test_a_third_party_provider_is_isolated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_TIMEOUT", "rapido")
    monkeypatch.setenv("ACME_RPM", "-1")
    llm = load_settings(host_with(provider("acme", AcmeSettings), FakeProvider("other")), env_file=None).llm
    assert list(llm.providers) == ["other"]
    assert llm.problems["acme"].splitlines() == [
        "ACME_TIMEOUT='rapido' no es válido: debe ser un número",
        "ACME_RPM='-1' no es válido: debe ser mayor o igual que 0",
    ]


def test_a_settings_class_that_raises_takes_only_its_provider_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISING_API_KEY", KEY)
    llm = load_settings(host_with(provider("raising", RaisingSettings), FakeProvider("other")), env_file=None).llm
    assert list(llm.providers) == ["other"]
    problem = llm.problems["raising"]
    assert "RuntimeError: plugin bug with key ***" in problem and "PATCODE_LOAD_PLUGINS" in problem
    assert KEY not in problem and "second line" not in problem


def test_any_exception_from_a_settings_class_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(ProviderSettings):
        model_config = SettingsConfigDict(env_prefix="BROKEN_")
        base_url: str = "http://x.test"

        def __init__(self, **values: object) -> None:
            raise KeyError("missing_thing")

    llm = load_settings(host_with(provider("broken", Broken), FakeProvider("other")), env_file=None).llm
    assert "KeyError: 'missing_thing'" in llm.problems["broken"] and list(llm.providers) == ["other"]


def test_core_values_still_stop_everything_and_are_listed_together(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MAX_TOKENS", "0")
    monkeypatch.setenv("LLM_STREAM_RECOVERY", "maybe")
    monkeypatch.setenv("PATCODE_LOG_LEVEL", "verbose")
    monkeypatch.setenv("GROQ_TIMEOUT", "rapido")  # a provider's: not part of the usage error
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    lines = caught.value.message.splitlines()
    assert lines[0] == "LLM_MAX_TOKENS='0' no es válido: debe ser mayor que 0"
    assert lines[1].startswith("LLM_STREAM_RECOVERY='maybe' no es válido: debe ser uno de: 'restart', 'error'")
    assert lines[2] == "PATCODE_LOG_LEVEL='verbose' no es válido: debe ser uno de: debug, info, warning, error, critical"
    assert "GROQ_TIMEOUT" not in str(caught.value)


def test_problems_is_empty_when_all_is_well_and_a_copy(host: PluginHost) -> None:
    llm = load_settings(host, env_file=None).llm
    assert llm.problems == {}
    llm.problems["groq"] = "x"
    assert llm.problems == {}


# -- 2. base URLs --------------------------------------------------------------------------------


def test_a_settings_class_without_base_url_loads() -> None:
    llm = load_settings(host_with(provider("bare", NoBaseUrlSettings)), env_file=None).llm
    assert llm.problems == {} and llm.bare.base_url == "" and llm.bare.model == "bare-1"


@pytest.mark.parametrize("value", ["", "  ", "/"])
def test_an_empty_base_url_means_none(value: str) -> None:
    assert check_base_url(value) == ""


@pytest.mark.parametrize("port", ["99999", "-1", "0", "65536"])
def test_a_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("ACME_BASE_URL", f"http://127.0.0.1:{port}/v1")
    llm = load_settings(host_with(provider("acme", AcmeSettings)), env_file=None).llm
    assert llm.problems["acme"].startswith(f"ACME_BASE_URL='http://127.0.0.1:{port}/v1' no es válido: el puerto {port}")
    assert "entre 1 y 65535" in llm.problems["acme"]


@pytest.mark.parametrize("value", ["http://127.0.0.1:1", "https://h.test:65535/v1", "http://[::1]:8080", "http://u:p@h.test"])
def test_valid_base_urls(value: str) -> None:
    assert check_base_url(value + "/") == value


@pytest.mark.parametrize("value", ["localhost:11434", "ftp://h.test", "http://", "http://h .test", "http://h.test:abc"])
def test_invalid_base_urls(value: str) -> None:
    with pytest.raises(ValueError, match="debe ser una URL http"):
        check_base_url(value)


# -- 3. keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("gsk_first_half\ngsk_second_half", "contiene un salto de línea"),
        ("gsk_first_half\r\nsecond", "contiene un salto de línea"),
        ("gsk_with space_inside", "contiene espacios"),
        ("gsk_with\ttab_inside", "contiene espacios"),
        ("gsk_bell\x07_inside", "contiene un carácter de control"),
        ("gsk_zero\u200bwidth", "contiene un carácter de control"),
        ("“gsk_curly_quotes”", "contiene caracteres no ASCII"),
        ("gsk_ñandú_key", "contiene caracteres no ASCII"),
    ],
)
def test_a_key_pasted_wrong_is_a_bad_value_never_echoed(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, key: str, reason: str
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", key)
    llm = load_settings(host, env_file=None).llm
    problem = llm.problems["groq"]
    assert problem.startswith(f"GROQ_API_KEY='***' no es válido: {reason}")
    assert key not in problem and "gsk_" not in problem
    assert "groq" not in llm.providers and "openai" in llm.providers


def test_a_key_is_still_trimmed(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", f"  {KEY}\t\n")
    assert load_settings(host, env_file=None).llm.groq.api_key_value() == KEY


def test_every_secret_field_of_a_plugin_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_SIGNING_SECRET", "abc def-signing")
    problem = load_settings(host_with(provider("acme", AcmeSettings)), env_file=None).llm.problems["acme"]
    assert problem == "ACME_SIGNING_SECRET='***' no es válido: contiene espacios dentro; copia solo la clave, sin espacios"
    monkeypatch.setenv("ACME_SIGNING_SECRET", "  clean-signing-secret ")
    llm = load_settings(host_with(provider("acme", AcmeSettings)), env_file=None).llm
    assert llm.acme.signing_secret.get_secret_value() == "clean-signing-secret"


# -- 4. no infinite bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e400"])
@pytest.mark.parametrize("variable", ["LLM_REQUEST_DEADLINE", "LLM_RETRY_BASE_DELAY", "LLM_FIRST_BYTE_TIMEOUT", "LLM_CACHE_TTL"])
def test_core_floats_refuse_inf_and_nan(host: PluginHost, monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    assert str(caught.value).startswith(f"{variable}='{value}' no es válido: debe ser un número finito")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_provider_floats_refuse_inf_and_nan(host: PluginHost, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OLLAMA_TIMEOUT", value)
    monkeypatch.setenv("ACME_TEMPERATURE_BIAS", value)
    assert load_settings(host, env_file=None).llm.problems["ollama"].startswith(
        f"OLLAMA_TIMEOUT='{value}' no es válido: debe ser un número finito"
    )
    assert load_settings(host_with(provider("acme", AcmeSettings)), env_file=None).llm.problems["acme"].startswith(
        f"ACME_TEMPERATURE_BIAS='{value}' no es válido: debe ser un número finito"
    )


def test_every_settings_class_inherits_allow_inf_nan_false(host: PluginHost) -> None:
    classes = [LLMSettings, ProviderSettings, AcmeSettings, *(info.settings_class for info in host.providers.values())]
    assert [cls.model_config.get("allow_inf_nan") for cls in classes] == [False] * len(classes)


@pytest.mark.parametrize(
    "entry", ["openai/*=inf:inf", "openai/*=nan:0", "openai/*=0:-inf", "openai/*=1e400:0", "openai/*=-1:0", "/m=1:1", " /m=1:1"]
)
def test_llm_prices_refuses_non_finite_and_negative(host: PluginHost, monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    with pytest.raises(ValueError):
        parse_price_overrides(entry)
    monkeypatch.setenv("LLM_PRICES", f"groq/x=0.1:0.2,{entry}")
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    assert f"la entrada '{entry.strip()}' no tiene la forma provider/modelo=entrada:salida" in str(caught.value)


def test_llm_prices_still_parses_good_entries() -> None:
    prices = parse_price_overrides("groq/openai/gpt-oss-120b=0.15:0.75, ollama/*=0:0")
    assert prices[("groq", "openai/gpt-oss-120b")].output_per_million == 0.75
    assert all(math.isfinite(p.input_per_million) for p in prices.values())


# -- 5. LLM_MAX_RESPONSE_BYTES -----------------------------------------------------------------


def test_max_response_bytes_default_and_override(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 8 * 1024 * 1024
    assert load_settings(host, env_file=None).llm.max_response_bytes == 8 * 1024 * 1024
    monkeypatch.setenv("LLM_MAX_RESPONSE_BYTES", "1024")
    assert load_settings(host, env_file=None).llm.max_response_bytes == 1024


@pytest.mark.parametrize(
    ("value", "reason"), [("0", "debe ser mayor que 0"), ("-5", "debe ser mayor que 0"), ("8MB", "debe ser un número entero")]
)
def test_max_response_bytes_bad_values(host: PluginHost, monkeypatch: pytest.MonkeyPatch, value: str, reason: str) -> None:
    monkeypatch.setenv("LLM_MAX_RESPONSE_BYTES", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    assert str(caught.value).startswith(f"LLM_MAX_RESPONSE_BYTES='{value}' no es válido: {reason}")


def test_max_response_bytes_is_documented() -> None:
    root = Path(__file__).parents[1]
    for doc in ("README.md", "docs/README.md"):
        assert "| `LLM_MAX_RESPONSE_BYTES` | `8388608` (8 MiB) |" in (root / doc).read_text(encoding="utf-8"), doc


# -- 6. PATCODE_* ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "language"),
    [("es", "es"), ("en", "en"), ("EN", "en"), ("en_US", "en"), ("es_ES.UTF-8", "es"), (" en_GB.utf8 ", "en"),
     ("fr", None), ("fr_FR", None), ("english", None)],
)
def test_language_from_setting(value: str, language: str | None) -> None:
    assert language_from_setting(value) == language


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PATCODE_LANG", "fr",
         "PATCODE_LANG='fr' no es válido: debe ser uno de: es, en (también un locale como en_US o es_ES.UTF-8)"),
        ("PATCODE_LOG_LEVEL", "verbose",
         "PATCODE_LOG_LEVEL='verbose' no es válido: debe ser uno de: debug, info, warning, error, critical"),
        ("PATCODE_LOG_FORMAT", "xml", "PATCODE_LOG_FORMAT='xml' no es válido: debe ser uno de: text, json"),
        ("PATCODE_HOME", "~nosuchuser_patcode/x",
         "PATCODE_HOME='~nosuchuser_patcode/x' no es válido: no se puede expandir '~nosuchuser_patcode'"),
    ],
)
def test_bad_patcode_variables_are_config_errors(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(host, env_file=None)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"PATCODE_LANG": "en_US", "PATCODE_LOG_LEVEL": "DEBUG", "PATCODE_LOG_FORMAT": "JSON"},
        {"PATCODE_LANG": "es_ES.UTF-8", "PATCODE_LOG_LEVEL": " critical ", "PATCODE_LOG_FORMAT": "text"},
        {"PATCODE_LANG": "", "PATCODE_LOG_LEVEL": "", "PATCODE_LOG_FORMAT": "", "PATCODE_HOME": ""},
        {"PATCODE_HOME": "~/patcode-data"},
    ],
)
def test_good_patcode_variables(environ: dict[str, str]) -> None:
    assert check_patcode_environment(environ) == []


def test_patcode_variables_are_read_from_the_environment_only(host: PluginHost, clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("PATCODE_LANG=fr\nPATCODE_LOG_LEVEL=loud\n", encoding="utf-8")
    assert load_settings(host).llm.problems == {}


# -- 7. .env parsed once ---------------------------------------------------------------------------


def test_dotenv_is_read_once_per_load(host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_environment / ".env").write_text("OLLAMA_MODEL=from-file\nLLM_MAX_TOKENS=7\n", encoding="utf-8")
    reads: list[object] = []
    real = config.read_dotenv

    def counting(path: object) -> object:
        reads.append(path)
        return real(path)  # type: ignore[arg-type]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pydantic-settings read .env itself")

    monkeypatch.setattr(config, "read_dotenv", counting)
    monkeypatch.setattr("pydantic_settings.sources.providers.dotenv.dotenv_values", forbidden)
    llm = load_settings(host).llm
    assert reads == [".env"]
    assert llm.ollama.model == "from-file" and llm.max_tokens == 7


def test_a_large_dotenv_loads(host: PluginHost, clean_environment: Path) -> None:
    lines = [f"UNRELATED_VARIABLE_{index}=value_{index}" for index in range(20_000)]
    (clean_environment / ".env").write_text("\n".join([*lines, "OLLAMA_MODEL=big-file"]) + "\n", encoding="utf-8")
    assert load_settings(host).llm.ollama.model == "big-file"


def test_an_unparsable_line_is_reported_once_and_its_variable_ignored(
    host: PluginHost, clean_environment: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (clean_environment / ".env").write_text(
        'OLLAMA_MODEL=before\nGROQ_MODEL="unterminated\nOPENAI_MODEL=after\n', encoding="utf-8"
    )
    with caplog.at_level(logging.DEBUG, logger="dotenv.main"):
        llm = load_settings(host).llm
    err = capsys.readouterr().err
    assert err.count("línea 2") == 1 and err.count("[WARNING]") == 1
    assert "[WARNING] .env, línea 2: no se pudo leer; su variable se ignora" in err
    assert "python-dotenv" not in err and not [r for r in caplog.records if r.name.startswith("dotenv")]
    assert (llm.ollama.model, llm.groq.model, llm.openai.model) == ("before", "openai/gpt-oss-120b", "after")


def test_unparsable_line_in_json_logs(
    host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATCODE_LOG_FORMAT", "json")
    (clean_environment / ".env").write_text("GOOD=1\n'broken\n", encoding="utf-8")
    load_settings(host)
    err = capsys.readouterr().err
    assert '"event": "env_line_unreadable"' in err and '"line": 2' in err and '"file": ".env"' in err


def test_environment_wins_and_names_match_case_insensitively(
    host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / ".env").write_text(
        "ollama_model=lower-case-name\nOPENAI_MODEL=from-file\nexport GROQ_MODEL=exported\n", encoding="utf-8"
    )
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    llm = load_settings(host).llm
    assert (llm.ollama.model, llm.openai.model, llm.groq.model) == ("lower-case-name", "from-env", "exported")


def test_variables_expand_as_python_dotenv_does(
    host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_FAMILY", "qwen2.5-coder")
    (clean_environment / ".env").write_text(
        "PORT=11500\nOLLAMA_BASE_URL=http://127.0.0.1:${PORT}\nOLLAMA_MODEL=${MODEL_FAMILY}:${SIZE:-7b}\n", encoding="utf-8"
    )
    llm = load_settings(host).llm
    assert (llm.ollama.base_url, llm.ollama.model) == ("http://127.0.0.1:11500", "qwen2.5-coder:7b")


DOTENV_SAMPLES = [
    "A=1\nB=2\n",
    "# comment\nexport A=1 # trailing\nB='single ${A}'\nC=\"double ${A} \\n\"\n",
    "A=1\nA=2\nBARE\nEMPTY=\n",
    "X=${HOME_FOR_TEST}/y\nY=${X}\nZ=${NOPE:-fallback}\n",
    '\ufeffA=bom\nB="multi\nline"\nC=after\n',
    'A="open\nB=2\n\'C\'=quoted-key\n',
    "A=1\r\nB=2\r\n",
]


@pytest.mark.parametrize("text", DOTENV_SAMPLES)
def test_parsing_matches_python_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    from dotenv import dotenv_values

    monkeypatch.setenv("HOME_FOR_TEST", "/home/test")
    path = tmp_path / "sample.env"
    path.write_text(text, encoding="utf-8", newline="")
    logging.getLogger("dotenv.main").disabled = True
    try:
        expected = dotenv_values(path, encoding="utf-8")
    finally:
        logging.getLogger("dotenv.main").disabled = False
    assert dict(read_dotenv(path).values) == dict(expected)


def test_unreadable_lines_are_numbered() -> None:
    assert parse_dotenv("A=1\nB='x\nC=2\n=oops\n").unreadable_lines == (2, 4)


def test_a_non_utf8_dotenv_is_still_a_config_error(host: PluginHost, clean_environment: Path) -> None:
    (clean_environment / ".env").write_bytes(b"GROQ_API_KEY=\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(host)
    assert str(caught.value).startswith("No se pudo leer .env (UnicodeDecodeError:")
    assert "debe ser un archivo de texto UTF-8" in str(caught.value)


def test_a_directory_named_dotenv_is_no_file(host: PluginHost, clean_environment: Path) -> None:
    (clean_environment / ".env").mkdir()
    assert load_settings(host).llm.problems == {}


def test_a_class_with_its_own_sources_still_reads_dotenv(clean_environment: Path) -> None:
    class OwnSources(ProviderSettings):
        model_config = SettingsConfigDict(env_prefix="OWN_")
        base_url: str = "http://own.test"

        @classmethod
        def settings_customise_sources(  # type: ignore[no-untyped-def,override]
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):
            return init_settings, env_settings, dotenv_settings

    (clean_environment / ".env").write_text("OWN_MODEL=own-model\n", encoding="utf-8")
    assert load_settings(host_with(provider("own", OwnSources))).llm.own.model == "own-model"


# -- 8. secrets registry ---------------------------------------------------------------------------


def test_loaded_secrets_and_url_passwords_are_redacted_everywhere(host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://patcode:hunter2hunter2@127.0.0.1:11434")
    llm = load_settings(host, env_file=None).llm
    assert "hunter2hunter2" in llm.ollama.secret_values()
    assert redact.redact(f"key {KEY} and password hunter2hunter2 alone") == "key *** and password *** alone"


def test_secrets_of_a_provider_whose_settings_failed_are_redacted(
    host: PluginHost, clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    monkeypatch.setenv("GROQ_TIMEOUT", "rapido")
    (clean_environment / ".env").write_text(
        "OPENAI_API_KEY=sk-from-dotenv-pasted wrong-half-of-key\n"
        "OLLAMA_BASE_URL=http://patcode:dotenvpassword@127.0.0.1:99999\n",
        encoding="utf-8",
    )
    llm = load_settings(host).llm
    assert set(llm.problems) == {"groq", "openai", "ollama"}
    assert "dotenvpassword" not in llm.problems["ollama"] and "OLLAMA_BASE_URL='http://patcode:***@" in llm.problems["ollama"]
    text = f"{KEY} | sk-from-dotenv-pasted wrong-half-of-key | wrong-half-of-key | dotenvpassword"
    assert redact.redact(text) == "*** | *** | *** | ***"


def test_secrets_of_a_raising_settings_class_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAISING_API_KEY", KEY)
    load_settings(host_with(provider("raising", RaisingSettings)), env_file=None)
    assert redact.redact(KEY) == "***"


def test_describe_validation_error_hides_every_secret_field() -> None:
    with pytest.raises(ValidationError) as caught:
        AcmeSettings(signing_secret="has space inside", timeout="x")  # type: ignore[arg-type]
    lines = config.describe_validation_error(AcmeSettings, caught.value)
    assert "ACME_SIGNING_SECRET='***'" in " ".join(lines) and "has space" not in " ".join(lines)


def test_core_secret_fields_would_be_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    class CoreWithSecret(LLMSettings):
        token: SecretStr | None = Field(default=None)

    monkeypatch.setattr(config, "LLMSettings", CoreWithSecret)
    monkeypatch.setenv("LLM_TOKEN", "core-token-value-1234")
    llm = load_settings(host_with(FakeProvider("other")), env_file=None).llm
    assert "core-token-value-1234" in llm.secret_values() and redact.redact("core-token-value-1234") == "***"
