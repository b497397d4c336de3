"""Finds provider plugins through entry points and keeps a broken one from hurting the rest.

Who owns a provider name: a name equal to an installed entry point's name
belongs to that entry point's plugin (``acme`` to the ``acme`` entry point),
whatever loads first; another plugin claiming it is refused and reported by
name. A provider's settings must use its own prefix (``ACME_`` for ``acme``),
so no package ever reads another provider's key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from patcode_core import hookspecs
from patcode_core.i18n import t
from patcode_core.log import get_logger
from patcode_core.plugin_guard import call_with_limit
from patcode_core.types import ProviderInfo

LOAD_PLUGINS_ENV = "PATCODE_LOAD_PLUGINS"


@dataclass(frozen=True, slots=True)
class BrokenPlugin:
    """A plugin that failed to import or to describe itself, and why."""

    name: str
    error: str


def allowed_plugins() -> set[str] | None:
    """``PATCODE_LOAD_PLUGINS`` as a set (``None``: load all; empty: load none)."""
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, for reports about plugins.

    pluggy's validation error says what is wrong on its later lines (an
    argument the hook spec does not have): those lines are kept, joined.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if isinstance(exc, pluggy.PluginValidationError):
        text = "; ".join(lines)
    else:
        text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginHost:
    """The pluggy manager plus what the core learned from each plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.providers: dict[str, ProviderInfo] = {}
        self.broken: dict[str, BrokenPlugin] = {}
        self._owners: dict[str, str] = {}
        self._callers: dict[tuple[str, str], Any] = {}
        #: Entry point names installed in the group: each one reserves that provider name for its plugin.
        self._reserved: set[str] = set()
        self._unreported: list[BrokenPlugin] = []
        self._log = get_logger()

    @classmethod
    def discover(cls, allow: set[str] | None = None, *, use_env: bool = True) -> PluginHost:
        """A host with every installed provider plugin (or those ``allow`` names)."""
        host = cls()
        if allow is None and use_env:
            allow = allowed_plugins()
        host.load_entry_points(allow)
        return host

    def load_entry_points(self, allow: set[str] | None = None) -> None:
        """Import each entry point of the group; a failing one is reported and skipped."""
        entries = sorted(entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name)
        self._reserved.update(entry.name.lower() for entry in entries)
        for entry in entries:
            if allow is not None and entry.name.lower() not in allow:
                continue
            if self.pm.has_plugin(entry.name) or entry.name in self.broken:
                continue
            try:
                # In a thread, with a time limit: an import that hangs or calls sys.exit() harms only itself.
                plugin = call_with_limit(entry.load, f"{entry.name} (import)")
            except Exception as exc:  # a broken plugin must not stop the others
                self._mark_broken(entry.name, exc)
                continue
            self.register(plugin, name=entry.name)

    def register(self, plugin: object, name: str) -> list[ProviderInfo]:
        """Register one plugin and learn its providers; failures are reported, not raised."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects hooks that do not match the specs
            self._mark_broken(name, exc)
            return []
        try:
            self.pm.check_pending()
            infos = self._infos_of(name)
            if not infos:
                raise LookupError(t("plugin.no_providers"))
        except Exception as exc:  # unknown hook names, provider_info raising or lying
            self.pm.unregister(name=name)
            self._mark_broken(name, exc)
            return []
        for info in infos:
            self.providers[info.name] = info
            self._owners[info.name] = name
        self._callers.clear()
        return infos

    def unregister(self, name: str) -> None:
        """Remove a plugin and the providers it brought (tests use this)."""
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        for provider in [p for p, owner in self._owners.items() if owner == name]:
            del self._owners[provider]
            del self.providers[provider]
        self.broken.pop(name, None)
        self._callers.clear()

    def caller(self, hook: str, provider: str) -> Any:
        """The hook caller that reaches only the plugin owning ``provider``."""
        key = (hook, provider)
        found = self._callers.get(key)
        if found is None:
            owner = self._owners[provider]
            others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != owner]
            found = self.pm.subset_hook_caller(hook, remove_plugins=others)
            self._callers[key] = found
        return found

    def plugin_of(self, provider: str) -> str:
        """The name of the plugin that brings ``provider``."""
        return self._owners[provider]

    def _infos_of(self, name: str) -> list[ProviderInfo]:
        plugin = self.pm.get_plugin(name)
        infos: list[ProviderInfo] = []
        for impl in self.pm.hook.provider_info.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            answer = call_with_limit(impl.function, f"{name}.provider_info")
            for info in answer if isinstance(answer, list) else [answer]:
                if not isinstance(info, ProviderInfo):
                    raise TypeError(t("plugin.bad_info", got=type(info).__name__))
                if info.name in self.providers:
                    raise ValueError(t("plugin.duplicate_provider", provider=info.name, owner=self._owners[info.name]))
                if info.name in self._reserved and info.name != name.lower():
                    raise ValueError(t("plugin.claims_other", plugin=name, provider=info.name, owner=info.name))
                _check_prefix(info)
                infos.append(info)
        return infos

    def _mark_broken(self, name: str, exc: BaseException) -> None:
        broken = BrokenPlugin(name, describe_exception(exc))
        self.broken[name] = broken
        self._unreported.append(broken)

    def report_broken(self) -> None:
        """Log each broken plugin once.

        The manager calls it after the settings are loaded, so that every
        configured secret is known to redaction before a plugin's error text
        (which may quote a key) is printed.
        """
        for broken in self._unreported:
            self._log.warning("plugin_broken", plugin=broken.name, error=broken.error)
        self._unreported.clear()


def _check_prefix(info: ProviderInfo) -> None:
    """A provider reads only its own variables: prefix ``ACME_`` for ``acme``, key variable under it."""
    expected = info.name.upper().replace("-", "_") + "_"
    prefix = str(info.settings_class.model_config.get("env_prefix", ""))
    if prefix.upper() != expected:
        raise ValueError(t("plugin.bad_prefix", provider=info.name, prefix=prefix or "-", expected=expected))
    if info.key_env and not info.key_env.upper().startswith(expected):
        raise ValueError(t("plugin.bad_prefix", provider=info.name, prefix=info.key_env, expected=expected))
