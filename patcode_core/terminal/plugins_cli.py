"""``patcode plugins``: what is installed and in what state, and ``plugins new NAME`` to start a plugin.

The listing reads the ``patcode.providers`` entry points (no provider is
called): each plugin's package and version, the providers it brings, the
hooks it implements, and ✅ or ❌ with the reason it could not load. The
skeleton is a working plugin package for a chat-completions server, built on
:mod:`patcode_core.plugin` only, with a test on the kit's conformance suite
(:mod:`patcode_core.testing`) that passes as generated.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from patcode_core.hookspecs import ENTRY_POINT_GROUP
from patcode_core.i18n import t
from patcode_core.plugins import PluginHost
from patcode_core.safe_text import printable_line

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class PluginRow:
    """One installed plugin as ``patcode plugins`` shows it."""

    name: str
    package: str
    version: str
    providers: tuple[str, ...]
    hooks: tuple[str, ...]
    error: str = ""


def installed_plugins(host: PluginHost) -> list[PluginRow]:
    """Every entry point of the group, loaded or broken, by name."""
    rows = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = entry.dist
        package, version = (dist.name, dist.version) if dist is not None else ("?", "?")
        broken = host.broken.get(entry.name)
        plugin = host.pm.get_plugin(entry.name)
        hooks = tuple(sorted(caller.name for caller in host.pm.get_hookcallers(plugin) or [])) if plugin is not None else ()
        providers = tuple(sorted(name for name in host.providers if host.plugin_of(name) == entry.name))
        rows.append(PluginRow(entry.name, package, version, providers, hooks, broken.error if broken is not None else ""))
    return rows


def plugins_block(rows: list[PluginRow]) -> str:
    """The listing, one block per plugin (every outside string escaped)."""
    lines = [t("plugins.title")]
    if not rows:
        lines.append("  " + t("plugins.none", group=ENTRY_POINT_GROUP))
    for row in rows:
        mark = "❌" if row.error else "✅"
        head = f"  {mark} {printable_line(row.name)} — {printable_line(row.package)} {printable_line(row.version)}"
        lines.append(head + (f" — {printable_line(row.error)}" if row.error else ""))
        if row.providers:
            lines.append("     " + t("plugins.providers", names=printable_line(", ".join(row.providers))))
        if row.hooks:
            lines.append("     " + t("plugins.hooks", names=", ".join(row.hooks)))
    return "\n".join(lines)


def check_name(name: str) -> str:
    """A plugin name that works as a provider name, a package suffix and an environment prefix.

    :raises ValueError: with the reason, in the user's language.
    """
    name = name.strip().lower()
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValueError(t("plugins.bad_name", name=name))
    return name


def write_skeleton(name: str, parent: Path) -> Path:
    """Write ``parent/patcode-NAME/``: a plugin package that works, and its test. Returns the folder.

    :raises FileExistsError: when the folder exists (nothing is overwritten).
    """
    name = check_name(name)
    root = parent / f"patcode-{name}"
    if root.exists():
        raise FileExistsError(str(root))
    package = root / f"patcode_{name}"
    (package).mkdir(parents=True)
    (root / "tests").mkdir()
    fields = {"name": name, "Name": name.title(), "NAME": name.upper()}
    (root / "pyproject.toml").write_text(_PYPROJECT.format(**fields), encoding="utf-8")
    (package / "__init__.py").write_text(_PACKAGE.format(**fields), encoding="utf-8")
    (root / "tests" / f"test_{name}.py").write_text(_TEST.format(**fields), encoding="utf-8")
    (root / "README.md").write_text(_README.format(**fields), encoding="utf-8")
    return root


_PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "patcode-{name}"
version = "0.1.0"
description = "{Name} for PatCode"
requires-python = ">=3.11"
dependencies = ["patcode-core>=0.2"]

[project.optional-dependencies]
test = ["patcode-core[testing]>=0.2"]

[project.entry-points."patcode.providers"]
{name} = "patcode_{name}:plugin"

[tool.setuptools]
packages = ["patcode_{name}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
"""

_PACKAGE = '''"""{Name} for PatCode: a chat-completions server at {NAME}_BASE_URL.

Settings (environment or .env): {NAME}_API_KEY, {NAME}_MODEL, {NAME}_BASE_URL, {NAME}_TIMEOUT.
Everything comes from patcode_core.plugin, the plugin authors' module.
"""

from __future__ import annotations

from patcode_core.plugin import ProviderInfo, ProviderSettings, SettingsConfigDict, chat_completions


class {Name}Settings(ProviderSettings):
    """{NAME}_* variables."""

    model_config = SettingsConfigDict(env_prefix="{NAME}_")

    model: str = "{name}-default"
    base_url: str = "https://api.{name}.example/v1"


plugin = chat_completions.ChatCompletionsPlugin(
    ProviderInfo(
        name="{name}",
        settings_class={Name}Settings,
        key_env="{NAME}_API_KEY",
        description="{Name} (chat completions)",
    ),
    chat_completions.Dialect,
)
'''

_TEST = '''"""{Name} through the PatCode kit's conformance suite (patcode_core.testing): no network."""

from __future__ import annotations

from patcode_core.plugin import ErrorKind, Usage
from patcode_core.testing import ConformanceSuite, ProviderDescription, StreamCase, WireCase

from patcode_{name} import plugin

KEY = "{name}-test-key-0123456789abcdef"
ANSWER = {{
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "{name}-default",
    "choices": [{{"index": 0, "message": {{"role": "assistant", "content": "hola"}}, "finish_reason": "stop"}}],
    "usage": {{"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
}}


def error(message: str, code: str) -> dict:
    return {{"error": {{"message": message, "type": "invalid_request_error", "param": None, "code": code}}}}


def chunk(content: str | None = None, finish: str | None = None) -> dict:
    delta = {{"content": content}} if content is not None else {{}}
    return {{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "{name}-default",
            "choices": [{{"index": 0, "delta": delta, "finish_reason": finish}}]}}


class Test{Name}Conformance(ConformanceSuite):
    description = ProviderDescription(
        plugin=plugin,
        key=KEY,
        path="/chat/completions",
        success=WireCase(json=ANSWER),
        expected_text="hola",
        expected_usage=Usage(3, 1),
        errors={{
            ErrorKind.AUTHENTICATION: WireCase(401, json=error(f"Incorrect API key provided: {{KEY}}", "invalid_api_key")),
            ErrorKind.RATE_LIMIT: WireCase(429, json=error("Rate limit reached", "rate_limit_exceeded"),
                                           headers={{"retry-after": "2"}}, retry_after=2.0),
            ErrorKind.SERVER_ERROR: WireCase(500, json=error("The server had an error", "server_error")),
        }},
        stream=StreamCase(
            events=[chunk("ho"), chunk("la"), chunk(finish="stop"), "[DONE]"],
            text="hola",
            cut_after=2,
        ),
    )
'''

_README = """# patcode-{name}

{Name} for PatCode. Install it into the same Python as PatCode:

    python -m pip install -e .

Then `patcode plugins` lists it and `patcode llm providers` shows `{name}`.
Test it with `python -m pytest` (after `python -m pip install -e '.[test]'`).
"""


__all__ = ["PluginRow", "check_name", "installed_plugins", "plugins_block", "write_skeleton"]
