"""Checks that need no server: hook and argument names, what ``provider_info`` says, settings defaults, message catalogues.

``check_plugin(plugin)`` returns the problems found, each one sentence that
names what to fix; ``assert_plugin_ok(plugin)`` fails a test with all of them.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import string
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pluggy

from patcode_core import hookspecs
from patcode_core.accounting.prices import Price
from patcode_core.i18n import LANGUAGES, Catalogue
from patcode_core.plugins import PluginHost, describe_exception
from patcode_core.provider_settings import ProviderSettings
from patcode_core.testing.environment import prefix_of
from patcode_core.testing.hosts import LoadedPlugin, infos_of, load_plugin, registration_name
from patcode_core.types import ProviderInfo

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def spec_arguments() -> dict[str, tuple[str, ...]]:
    """Each hook of the contract and the arguments its spec declares."""
    specs = {}
    for name, function in vars(hookspecs).items():
        if inspect.isfunction(function) and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec"):
            specs[name] = tuple(inspect.signature(function).parameters)
    return specs


def _required_arguments(function: object) -> list[str]:
    """The arguments pluggy passes to a hook implementation: those without a default (``self`` excluded)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return [p.name for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty]


def hook_problems(obj: object) -> list[str]:
    """Marked hooks the contract does not have, arguments their spec does not declare, and hooks left unmarked."""
    specs = spec_arguments()
    marker = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    problems = []
    marked = set()
    for attribute in dir(obj):
        options = marker.parse_hookimpl_opts(obj, attribute)
        if options is None:
            if attribute in specs and callable(inspect.getattr_static(obj, attribute, None)):
                problems.append(f"{attribute} is not marked @hookimpl: PatCode never calls it")
            continue
        hook = options.get("specname") or attribute
        marked.add(hook)
        if hook not in specs:
            problems.append(f"@hookimpl {attribute}: there is no hook {hook!r} (the hooks are {', '.join(sorted(specs))})")
            continue
        unknown = [name for name in _required_arguments(getattr(obj, attribute)) if name not in specs[hook]]
        if unknown:
            problems.append(
                f"@hookimpl {attribute} declares {', '.join(map(repr, unknown))}, which the hook does not pass "
                f"(its arguments: {', '.join(specs[hook])})"
            )
    if "provider_info" not in marked:
        problems.append("no @hookimpl provider_info: the plugin describes no provider")
    return problems


@contextmanager
def _without_variables(prefix: str) -> Iterator[None]:
    """No ``prefix*`` variable in the environment while inside (restored after)."""
    saved = {name: value for name, value in os.environ.items() if name.upper().startswith(prefix)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def info_problems(info: object) -> list[str]:
    """What is wrong in one ``ProviderInfo``: its name, settings class, prefix, key variable, defaults and prices."""
    if not isinstance(info, ProviderInfo):
        return [f"provider_info returns a {type(info).__name__}, not a ProviderInfo (or a list of them)"]
    problems = []
    if not _NAME.match(info.name):
        problems.append(f"provider name {info.name!r}: lower-case letters, digits, '-' or '_', starting with a letter")
    settings_class = info.settings_class
    if not (isinstance(settings_class, type) and issubclass(settings_class, ProviderSettings)):
        return [*problems, f"{info.name}: settings_class {settings_class!r} is not a subclass of ProviderSettings"]
    expected = info.name.upper().replace("-", "_") + "_"
    prefix = prefix_of(info)
    if prefix != expected:
        problems.append(f"{info.name}: the settings class's env_prefix is {prefix or 'empty'!r}, it must be {expected!r}")
    if info.key_env and not info.key_env.upper().startswith(expected):
        problems.append(f"{info.name}: key_env {info.key_env!r} is not one of its own variables ({expected}...)")
    with _without_variables(prefix or expected):
        try:
            settings = settings_class(_env_file=None)
            settings.config_warnings()
        except Exception as exc:  # the defaults themselves are invalid, or the class raises
            problems.append(f"{info.name}: its settings do not load with their defaults: {describe_exception(exc)}")
    for model, price in dict(info.prices).items():
        if not isinstance(model, str) or not isinstance(price, Price):
            problems.append(f"{info.name}: prices[{model!r}] must be a Price keyed by a model name or pattern")
        elif not all(math.isfinite(v) and v >= 0 for v in (price.input_per_million, price.output_per_million)):
            problems.append(f"{info.name}: the price of {model!r} must be finite and not negative")
    if not (math.isfinite(info.cold_start) and info.cold_start >= 0):
        problems.append(f"{info.name}: cold_start must be finite seconds, not negative")
    return problems


def catalogues_of(plugin: LoadedPlugin) -> dict[str, Catalogue]:
    """Every :class:`Catalogue` kept at module level in the plugin's package (already imported modules), by name."""
    names = {plugin.module or ""}
    for attribute in dir(plugin.obj):
        function = inspect.getattr_static(plugin.obj, attribute, None)
        names.add(getattr(function, "__module__", None) or "")
    packages = {name.split(".")[0] for name in names if name} - {"patcode_core", "builtins"}
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] not in packages:
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, Catalogue):
                found[f"{module_name}.{attribute}"] = value
    return found


def catalogue_problems(where: str, catalogue: Catalogue) -> list[str]:
    """Keys one language has and another lacks, and messages whose ``{fields}`` differ between languages."""
    problems = []
    first, *others = LANGUAGES
    for language in others:
        missing = catalogue.keys(first) - catalogue.keys(language)
        extra = catalogue.keys(language) - catalogue.keys(first)
        if missing:
            problems.append(f"{where}: {language!r} lacks {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"{where}: {first!r} lacks {', '.join(sorted(extra))}")
        for key in sorted(catalogue.keys(first) & catalogue.keys(language)):
            fields = [
                {f for _, f, _, _ in string.Formatter().parse(catalogue.languages[lang][key]) if f}
                for lang in (first, language)
            ]
            if fields[0] != fields[1]:
                problems.append(f"{where}[{key!r}]: the fields differ between {first!r} {sorted(fields[0])} and {language!r} {sorted(fields[1])}")
    return problems


def check_plugin(plugin: object) -> list[str]:
    """Every problem the kit finds in ``plugin`` (an object, a module, or its entry point name) without a server.

    Checks: the entry point loads; each ``@hookimpl`` names a hook of the
    contract and only arguments its spec has, and no hook is left unmarked;
    ``provider_info`` returns valid ``ProviderInfo`` values (name, a
    ``ProviderSettings`` subclass with the prefix ``NAME_``, a key variable
    under it, settings that load from their defaults in a clean environment,
    prices); a host accepts the plugin; each message ``Catalogue`` of the
    plugin's package has the same keys and fields in every language.
    """
    try:
        loaded = load_plugin(plugin)
    except Exception as exc:  # an entry point that does not import is the first problem to report
        return [f"the plugin {plugin!r} does not load: {describe_exception(exc)}"]
    problems = hook_problems(loaded.obj)
    try:
        infos: list[object] = list(infos_of(loaded))
    except Exception as exc:  # provider_info raising is a problem to report, not a crash of the check
        problems.append(f"provider_info raises {describe_exception(exc)}")
        infos = []
    for info in infos:
        problems += info_problems(info)
    if not problems and infos:
        name = registration_name(loaded)
        host = PluginHost()
        host.register(loaded.obj, name=name)
        if name in host.broken:
            problems.append(f"PatCode refuses the plugin: {host.broken[name].error}")
    for where, catalogue in sorted(catalogues_of(loaded).items()):
        problems += catalogue_problems(where, catalogue)
    return problems


def assert_plugin_ok(plugin: object) -> None:
    """Fail with every problem :func:`check_plugin` finds, one per line."""
    problems = check_plugin(plugin)
    assert not problems, "the plugin has problems:\n- " + "\n- ".join(problems)
