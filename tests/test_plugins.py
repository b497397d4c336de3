"""Discovery through entry points, the allow-list, and broken plugins that hurt nobody."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from helpers import FakeProvider

from patcode_core import hookimpl
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.terminal.render import providers_block


def test_the_three_plugins_are_discovered_through_entry_points() -> None:
    host = PluginHost.discover()
    assert {"groq", "ollama", "openai"} <= set(host.providers)
    assert host.broken == {}
    assert host.plugin_of("groq") == "groq"
    assert [p for p in LLMManager(host=host, env_file=None).installed if p in ("groq", "ollama", "openai")] == [
        "groq",
        "ollama",
        "openai",
    ]


def test_allow_list_limits_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "ollama, OpenAI")
    assert set(PluginHost.discover().providers) == {"ollama", "openai"}
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "")
    assert PluginHost.discover().providers == {}


def _with_broken_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import patcode_core.plugins as plugins_module

    real = plugins_module.entry_points

    def patched(group: str):  # type: ignore[no-untyped-def]
        found = list(real(group=group))
        return found + [EntryPoint(name="broken", value="patcode_missing_module_xyz", group=group)]

    monkeypatch.setattr(plugins_module, "entry_points", patched)


def test_a_plugin_that_fails_to_import_is_reported_and_others_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_broken_entry_point(monkeypatch)
    host = PluginHost.discover()
    assert "broken" in host.broken and {"groq", "ollama", "openai"} <= set(host.providers)
    assert "no se pudo cargar" not in capsys.readouterr().err  # reported once the settings' secrets are known
    manager = LLMManager(host=host, env_file=None)
    err = capsys.readouterr().err
    assert "[WARNING] Plugin 'broken' no se pudo cargar: ModuleNotFoundError: No module named 'patcode_missing_module_xyz'" in err
    assert "broken" in manager.installed


async def test_broken_plugin_shows_a_cross_row_and_is_skipped_in_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_broken_entry_point(monkeypatch)
    monkeypatch.setenv("PATCODE_LOAD_PLUGINS", "broken")
    host = PluginHost.discover()
    good = FakeProvider("good")
    host.register(good, name="good")
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "broken,good")
    manager = LLMManager(host=host, env_file=None)
    block = providers_block(await manager.providers_status())
    assert "❌ broken (actual) — el plugin 'broken' no se pudo cargar: ModuleNotFoundError" in block
    assert "✅ good" in block
    result = await manager.complete("hola")
    assert result.provider == "good" and result.failures[0].provider == "broken"


def test_a_plugin_whose_provider_info_raises_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    class Exploding:
        @hookimpl
        def provider_info(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no settings for you")

    host = PluginHost.discover()
    assert host.register(Exploding(), name="exploding") == []
    assert host.broken["exploding"].error == "RuntimeError: no settings for you"
    host.report_broken()
    assert "[WARNING] Plugin 'exploding' no se pudo cargar: RuntimeError: no settings for you" in capsys.readouterr().err
    assert {"groq", "ollama", "openai"} <= set(host.providers)


def test_a_plugin_with_a_misspelled_hook_is_reported() -> None:
    class Misspelled:
        @hookimpl
        def provider_infos(self):  # type: ignore[no-untyped-def]
            return None

    host = PluginHost()
    host.register(Misspelled(), name="misspelled")
    assert "misspelled" in host.broken


def test_two_plugins_cannot_claim_the_same_provider() -> None:
    host = PluginHost()
    host.register(FakeProvider("same"), name="first")
    host.register(FakeProvider("same"), name="second")
    assert host.plugin_of("same") == "first" and "ya lo aporta el plugin 'first'" in host.broken["second"].error


def test_a_provider_reads_only_its_own_prefix() -> None:
    class Squatter(FakeProvider):
        @hookimpl
        def provider_info(self):  # type: ignore[no-untyped-def]
            info = super().provider_info()
            return type(info)(name="evil", display_name="Evil", settings_class=info.settings_class, key_env="GROQ_API_KEY")

    host = PluginHost()
    host.register(Squatter("alpha"), name="evil")
    assert "evil" not in host.providers
    assert "'evil'" in host.broken["evil"].error and "'EVIL_'" in host.broken["evil"].error


async def test_availability_hook_that_raises_is_a_cross_row() -> None:
    class FlakyStatus(FakeProvider):
        @hookimpl
        async def provider_available(self, provider, context):  # type: ignore[no-untyped-def,override]
            raise ValueError("oops")

    host = PluginHost()
    host.register(FlakyStatus("flaky"), name="flaky")
    rows = await LLMManager(host=host, env_file=None).providers_status()
    assert rows[0].available is False and rows[0].reason == "el plugin 'flaky' falló: ValueError: oops"


def test_register_and_unregister_for_one_test() -> None:
    host = PluginHost.discover()
    host.register(FakeProvider("temporary"), name="temporary")
    assert "temporary" in host.providers
    host.unregister("temporary")
    assert "temporary" not in host.providers


def test_hooks_are_documented_with_their_exact_signature() -> None:
    import inspect

    from patcode_core import hookspecs

    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    names = [name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT_NAME}_spec")]
    assert {"provider_info", "provider_available", "provider_complete", "provider_stream"} <= set(names)
    for name in names:
        spec = getattr(hookspecs, name)
        signature = f"{name}{inspect.signature(spec)}".replace("'", "")
        assert f"### `{name}`" in docs, f"docs/plugins.md lacks a heading for {name}"
        assert signature in docs, f"docs/plugins.md lacks the signature {signature}"
        assert spec.__doc__ and ":return:" in spec.__doc__


def test_hookimpl_is_importable_from_the_core() -> None:
    from patcode_core import hookimpl as exported
    from patcode_core.hookspecs import hookimpl as original

    assert exported is original


def test_the_core_names_no_concrete_provider() -> None:
    core = Path(__file__).parents[1] / "patcode_core"
    offenders = [
        f"{path.name}:{number}"
        for path in core.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(name in line.lower() for name in ("groq", "ollama", "openai"))
    ]
    assert offenders == []
