"""The testing kit, patcode_core.testing (issue 12, point 2): it passes a good plugin and fails each broken one where it is broken."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from fakes.kit_acme import BREAKS, Acme

from patcode_core.plugin import Catalogue, ProviderInfo, ProviderSettings, hookimpl
from patcode_core.testing import check_plugin

#: What each break must fail, and nothing else (test names of ConformanceSuite, with their ids).
CAUGHT_BY = {
    "429_is_server_error": {"test_error_kind[rate_limit-429]", "test_fallback[rate_limit-429]"},
    "leaks_key": {"test_no_key_in_errors[authentication-401]"},
    "cut_stream_is_whole": {"test_cut_stream[eof]"},
    "untranslated_finish": {"test_success", "test_stream_chunks", "test_stream"},
    "ignores_retry_after": {"test_error_kind[rate_limit-429]"},
    "retries_itself": {
        "test_fallback[server_error-500]", "test_fallback[server_error-503]",
        "test_retry[server_error-500]", "test_retry[server_error-503]",
    },
    "wrong_usage": {"test_success", "test_cost", "test_stream_chunks", "test_stream"},
    "error_as_answer": {"test_error_kind[server_error-500]", "test_fallback[server_error-500]", "test_retry[server_error-500]"},
}

SUITES = '''
from fakes.kit_acme import BREAKS, Acme, description

from patcode_core.testing import ConformanceSuite, conformance_tests


class TestGood(ConformanceSuite):
    description = description(Acme())


for _name in BREAKS:
    globals()[f"TestBroken_{_name}"] = conformance_tests(description(Acme({_name})), name=f"TestBroken_{_name}")


class TestKnown(ConformanceSuite):
    description = description(
        Acme({"untranslated_finish"}),
        known_failures={"success": "Acme's word", "stream": "Acme's word", "stream_chunks": "Acme's word", "cost": "listed by mistake"},
    )
'''


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, set[str]]]:
    """Run the suite on the good Acme and on each broken one, in a pytest of its own: ``{class: {outcome: {test}}}``."""
    directory = tmp_path_factory.mktemp("kit-run")
    (directory / "test_acme_suites.py").write_text(SUITES, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "--import-mode=importlib",
         "-o", "asyncio_default_fixture_loop_scope=function", str(directory)],
        cwd=directory, capture_output=True, text=True, timeout=300,
        env={
            **{name: value for name, value in os.environ.items() if not name.startswith(("LLM_", "PATCODE_"))},
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        },
    )
    found: dict[str, dict[str, set[str]]] = {}
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word not in ("PASSED", "FAILED", "XFAIL", "SKIPPED", "ERROR") or "::" not in rest:
            continue
        _, klass, test = rest.split(" - ")[0].split("::")
        found.setdefault(klass, {}).setdefault(word, set()).add(test)
    assert found, result.stdout[-3000:] + result.stderr[-3000:]
    return found


def test_a_good_plugin_passes_every_check(outcomes: dict[str, dict[str, set[str]]]) -> None:
    good = outcomes["TestGood"]
    assert set(good) == {"PASSED"}, good
    # Six error answers, four checks each; static, success, cost; the stream three ways (and cut two ways).
    assert len(good["PASSED"]) == 7 * 4 + 3 + 2 + 2


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_a_broken_plugin_fails_exactly_where_it_is_broken(outcomes: dict[str, dict[str, set[str]]], broken: str) -> None:
    report = outcomes[f"TestBroken_{broken}"]
    assert report.get("FAILED", set()) == CAUGHT_BY[broken], f"{BREAKS[broken]}: {report}"
    assert set(report) <= {"PASSED", "FAILED"}


def test_known_failures_are_expected_and_a_listed_check_that_passes_fails(outcomes: dict[str, dict[str, set[str]]]) -> None:
    known = outcomes["TestKnown"]
    assert known["XFAIL"] == {"test_success", "test_stream", "test_stream_chunks"}
    assert known["FAILED"] == {"test_cost"}


def test_the_guides_example_passes_on_the_guides_minimal_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The description in docs/plugins.md, run check by check on the minimal plugin of the same guide."""
    import asyncio
    import dataclasses

    from patcode_core.testing import checks
    from patcode_core.testing.kit import Kit

    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    minimal = types.ModuleType("patcode_acme_guide")
    exec(compile(blocks[0], "docs/plugins.md[minimal]", "exec"), minimal.__dict__)  # noqa: S102
    namespace: dict[str, object] = {}
    exec(compile(next(b for b in blocks if "ConformanceSuite" in b), "docs/plugins.md[kit]", "exec"), namespace)  # noqa: S102
    described = dataclasses.replace(namespace["TestAcmeConformance"].description, plugin=minimal)  # type: ignore[attr-defined]
    steps = [(checks.check_static,), (checks.check_success,), (checks.check_cost,)]
    for case in described.error_cases():
        steps += [(check, case) for check in (checks.check_error_kind, checks.check_fallback,
                                              checks.check_retry, checks.check_no_key_in_errors)]
    assert len(steps) == 7
    for check, *arguments in steps:
        asyncio.run(check(Kit(described, monkeypatch, tmp_path), *arguments))


# -- static checks ---------------------------------------------------------


def test_the_first_party_plugins_and_acme_have_no_static_problem() -> None:
    for name in ("groq", "ollama", "openai"):
        assert check_plugin(name) == [], name
    assert check_plugin(Acme()) == []


def _module(name: str, **members: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for attribute, value in members.items():
        setattr(module, attribute, value)
        if callable(value) and hasattr(value, "__module__"):
            try:
                value.__module__ = name
            except (AttributeError, TypeError):
                pass
    return module


class _Settings(ProviderSettings):
    model_config = ProviderSettings.model_config | {"env_prefix": "STATICCASE_"}
    model: str = "m"


def _info() -> ProviderInfo:
    return ProviderInfo(name="staticcase", settings_class=_Settings)


@hookimpl(specname="provider_info")
def _provider_info() -> ProviderInfo:
    return _info()


def test_static_checks_name_each_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    @hookimpl
    async def provider_complete(provider, reqest, context):  # noqa: ANN001, ANN202 - the typo is the point
        raise NotImplementedError

    @hookimpl
    def provider_completion(provider, request, context):  # noqa: ANN001, ANN202
        raise NotImplementedError

    def provider_stream(provider, request, context):  # noqa: ANN001, ANN202 - not marked
        raise NotImplementedError

    module = _module(
        "kit_static_case",
        provider_info=_provider_info,
        provider_complete=provider_complete,
        provider_completion=provider_completion,
        provider_stream=provider_stream,
        MESSAGES=Catalogue(es={"a": "uno {n}", "b": "dos"}, en={"a": "one {count}"}),
    )
    monkeypatch.setitem(sys.modules, "kit_static_case", module)
    problems = "\n".join(check_plugin(module))
    assert "'reqest', which the hook does not pass" in problems
    assert "there is no hook 'provider_completion'" in problems
    assert "provider_stream is not marked @hookimpl" in problems
    assert "kit_static_case.MESSAGES: 'en' lacks b" in problems
    assert "kit_static_case.MESSAGES['a']: the fields differ" in problems


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (lambda: ProviderInfo(name="staticcase", settings_class=type("S", (ProviderSettings,), {
            "model_config": ProviderSettings.model_config | {"env_prefix": "OTHER_"}})), "env_prefix is 'OTHER_', it must be 'STATICCASE_'"),
        (lambda: ProviderInfo(name="staticcase", settings_class=_Settings, key_env="OPENAI_API_KEY"), "key_env 'OPENAI_API_KEY' is not one of its own"),
        (lambda: ProviderInfo(name="staticcase", settings_class=type("S", (_Settings,), {
            "__annotations__": {"base_url": str}, "base_url": "ftp://nowhere"})), "do not load with their defaults"),
        (lambda: ProviderInfo(name="StaticCase", settings_class=_Settings), "provider name 'StaticCase'"),
        (lambda: {"name": "staticcase"}, "returns a dict, not a ProviderInfo"),
    ],
)
def test_static_checks_of_what_provider_info_says(monkeypatch: pytest.MonkeyPatch, info: object, expected: str) -> None:
    monkeypatch.setitem(sys.modules, "kit_static_info", module := _module("kit_static_info", provider_info=hookimpl(info)))
    assert any(expected in problem for problem in check_plugin(module)), check_plugin(module)


def test_settings_defaults_are_checked_in_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value in the developer's environment is not the plugin's problem: the defaults are checked without it."""
    monkeypatch.setenv("ACME_TIMEOUT", "not a number")
    assert check_plugin(Acme()) == []
    assert os.environ["ACME_TIMEOUT"] == "not a number"


def test_an_entry_point_that_does_not_exist_is_one_problem() -> None:
    assert check_plugin("no-such-plugin") == [
        "the plugin 'no-such-plugin' does not load: LookupError: no entry point named 'no-such-plugin' in the group "
        f"'patcode.providers' (installed: {', '.join(sorted(e.name for e in entry_points(group='patcode.providers')))})"
    ]


# -- the pytest plugin and its fixtures --------------------------------------


def test_the_kit_is_a_pytest_plugin_loaded_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert [e.value for e in entry_points(group="pytest11") if e.name == "patcode"] == ["patcode_core.testing.pytest_plugin"]
    assert pytestconfig.pluginmanager.has_plugin("patcode")


def test_loading_the_pytest_plugin_imports_nothing_else_of_patcode() -> None:
    code = "import sys, patcode_core.testing.pytest_plugin\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert {name for name in loaded if name.startswith("patcode_core.testing")} == {"patcode_core.testing", "patcode_core.testing.pytest_plugin"}
    assert not {"patcode_core.manager", "patcode_core.plugins", "respx", "httpx"} & loaded


def test_patcode_env_clears_every_patcode_and_provider_variable(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    for name, value in {"LLM_MAX_RETRIES": "9", "PATCODE_LANG": "en", "GROQ_API_KEY": "gsk_x", "OLLAMA_MODEL": "m", "HOME_ALONE": "1"}.items():
        monkeypatch.setenv(name, value)
    env = request.getfixturevalue("patcode_env")
    assert os.environ["PATCODE_LANG"] == "es" and os.environ["PATCODE_HOME"] == str(env.home)
    assert not {"LLM_MAX_RETRIES", "GROQ_API_KEY", "OLLAMA_MODEL"} & set(os.environ)
    assert os.environ["HOME_ALONE"] == "1" and Path.cwd() == env.home.parent
    env.set(ACME_MODEL="acme-2")
    assert os.environ["ACME_MODEL"] == "acme-2"


async def test_patcode_manager_for_holds_the_plugin_alone(patcode_manager_for) -> None:  # noqa: ANN001 - a fixture
    import respx

    manager = patcode_manager_for("ollama", OLLAMA_MODEL="llama3.2")
    assert manager.installed == ["ollama"] and manager.model_of("ollama") == "llama3.2"
    with respx.mock:
        respx.post("http://localhost:11434/api/chat").respond(
            json={"model": "llama3.2", "message": {"role": "assistant", "content": "hola"}, "done": True, "done_reason": "stop"})
        assert (await manager.complete("hola")).text == "hola"
    assert patcode_manager_for(Acme(), ACME_API_KEY="k-0123456789").installed == ["acme"]
