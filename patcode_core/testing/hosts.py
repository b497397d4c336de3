"""The plugin under test, alone in a host (with, when asked, a stand-in provider to fall back to)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic_settings import SettingsConfigDict

from patcode_core.hookspecs import ENTRY_POINT_GROUP, hookimpl
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.provider_settings import ProviderSettings
from patcode_core.types import CompletionRequest, ProviderInfo, ProviderReply, Usage

#: The provider the kit falls back to: no network, always answers.
BACKUP = "kitbackup"
BACKUP_TEXT = "respuesta del provider de respaldo del kit"


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """A plugin object and where it came from.

    :param obj: what is registered with the host (a module or an object with hook methods).
    :param entry_name: its entry point name, when it was loaded from one.
    :param module: the module that defines it (where its message catalogue lives).
    """

    obj: object
    entry_name: str | None
    module: str | None


def load_plugin(plugin: object) -> LoadedPlugin:
    """``plugin`` itself, or the object its entry point name (in ``patcode.providers``) loads.

    :raises LookupError: no entry point has that name.
    """
    if isinstance(plugin, LoadedPlugin):
        return plugin
    if isinstance(plugin, str):
        found = [entry for entry in entry_points(group=ENTRY_POINT_GROUP) if entry.name == plugin]
        if not found:
            installed = ", ".join(sorted(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))) or "-"
            raise LookupError(f"no entry point named {plugin!r} in the group {ENTRY_POINT_GROUP!r} (installed: {installed})")
        return LoadedPlugin(found[0].load(), found[0].name, found[0].module)
    if isinstance(plugin, ModuleType):
        return LoadedPlugin(plugin, _entry_name_of(plugin), plugin.__name__)
    return LoadedPlugin(plugin, _entry_name_of(plugin), _entry_module_of(plugin) or type(plugin).__module__)


def _entries_of(obj: object) -> list[Any]:
    """The installed entry points that load ``obj`` (only those whose module is already imported)."""
    matches = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        module = sys.modules.get(entry.module)
        if module is None:
            continue
        target: Any = module
        for part in (entry.attr or "").split("."):
            target = getattr(target, part, None) if part else target
        if target is obj:
            matches.append(entry)
    return matches


def _entry_name_of(obj: object) -> str | None:
    entries = _entries_of(obj)
    return entries[0].name if entries else None


def _entry_module_of(obj: object) -> str | None:
    entries = _entries_of(obj)
    return entries[0].module if entries else None


def infos_of(plugin: LoadedPlugin) -> list[ProviderInfo]:
    """What the plugin's ``provider_info`` says, as a list (empty when it has no such hook)."""
    hook = getattr(plugin.obj, "provider_info", None)
    if hook is None:
        return []
    answer = hook()
    return list(answer) if isinstance(answer, list | tuple) else [answer]


def registration_name(plugin: LoadedPlugin, provider: str | None = None) -> str:
    """The name the plugin is registered under: its entry point's, else its provider's."""
    if plugin.entry_name:
        return plugin.entry_name
    if provider:
        return provider
    infos = infos_of(plugin)
    if not infos or not isinstance(infos[0], ProviderInfo):
        raise LookupError(f"{plugin.obj!r} describes no provider (its provider_info returns nothing usable)")
    return infos[0].name


class BackupSettings(ProviderSettings):
    """``KITBACKUP_*``: nothing to set."""

    model_config = SettingsConfigDict(env_prefix=f"{BACKUP.upper()}_")
    model: str = "backup-1"


class BackupProvider:
    """The provider the kit falls back to: answers at once, without network, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[CompletionRequest] = []

    @hookimpl
    def provider_info(self) -> ProviderInfo:
        return ProviderInfo(name=BACKUP, settings_class=BackupSettings, joins_default_order=False)

    @hookimpl
    async def provider_complete(self, provider: str, request: CompletionRequest, context: Any) -> ProviderReply:
        self.calls.append(request)
        return ProviderReply(text=BACKUP_TEXT, model=request.model, finish_reason="stop", usage=Usage(1, 1))


def host_for(plugin: object, *, provider: str | None = None, backup: BackupProvider | None = None) -> PluginHost:
    """A host holding only ``plugin`` (and ``backup``), loaded from no entry point.

    :raises AssertionError: the host refuses the plugin (the reason is pluggy's or the core's).
    """
    loaded = load_plugin(plugin)
    name = registration_name(loaded, provider)
    host = PluginHost()
    host.register(loaded.obj, name=name)
    if name in host.broken:
        raise AssertionError(f"PatCode refuses the plugin {name!r}: {host.broken[name].error}")
    if backup is not None:
        host.register(backup, name=BACKUP)
    return host


def manager_for(plugin: object, *, provider: str | None = None, backup: BackupProvider | None = None) -> LLMManager:
    """An :class:`LLMManager` whose host holds only ``plugin`` (and ``backup``), reading no ``.env``.

    The environment is read as it is now: set the variables first.
    """
    return LLMManager(host=host_for(plugin, provider=provider, backup=backup), env_file=None)
