"""PatCode's testing kit for provider plugins: fixtures, a conformance suite and static checks.

Installed with the core and registered as a pytest plugin (entry point
``pytest11``: ``patcode``), so its fixtures exist in every test session and do
nothing unless a test asks for them:

- ``patcode_env``: no ``LLM_``/``PATCODE_``/provider variable inherited,
  ``PATCODE_LANG=es``, a temporary ``PATCODE_HOME``;
- ``patcode_manager_for(plugin, **env)``: an ``LLMManager`` whose host holds
  only that plugin (an object or its entry point name), closed at the end.

A plugin's conformance tests::

    from patcode_core.testing import ConformanceSuite, ProviderDescription, WireCase

    class TestAcmeConformance(ConformanceSuite):
        description = ProviderDescription(plugin="acme", success=WireCase(json={...}), expected_text="...")

Static checks alone: ``check_plugin(plugin)`` (a list of problems) or
``assert_plugin_ok(plugin)``. The provider's server is played by respx
(``pip install 'patcode-core[testing]'``); ``FaultServer`` is a real one on a
loopback port, for what respx cannot do (hangs, resets, slow bodies) and to
read the requests as they were sent.

Names are imported on first use: loading the pytest plugin imports nothing else.

.. versionadded:: 0.2
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patcode_core.testing.conformance import ConformanceSuite, conformance_tests
    from patcode_core.testing.description import KIT_KEY, ErrorCase, ProviderDescription, StreamCase, WireCase, sse_event
    from patcode_core.testing.environment import PatcodeEnv
    from patcode_core.testing.fault_server import FaultServer, RecordedRequest
    from patcode_core.testing.hosts import BACKUP, BackupProvider, manager_for
    from patcode_core.testing.kit import Kit
    from patcode_core.testing.static import assert_plugin_ok, check_plugin

_LAZY = {
    "BACKUP": "hosts",
    "BackupProvider": "hosts",
    "ConformanceSuite": "conformance",
    "ErrorCase": "description",
    "FaultServer": "fault_server",
    "KIT_KEY": "description",
    "Kit": "kit",
    "PatcodeEnv": "environment",
    "ProviderDescription": "description",
    "RecordedRequest": "fault_server",
    "StreamCase": "description",
    "WireCase": "description",
    "assert_plugin_ok": "static",
    "check_plugin": "static",
    "conformance_tests": "conformance",
    "manager_for": "hosts",
    "sse_event": "description",
}

__all__ = [
    "BACKUP",
    "KIT_KEY",
    "BackupProvider",
    "ConformanceSuite",
    "ErrorCase",
    "FaultServer",
    "Kit",
    "PatcodeEnv",
    "ProviderDescription",
    "RecordedRequest",
    "StreamCase",
    "WireCase",
    "assert_plugin_ok",
    "check_plugin",
    "conformance_tests",
    "manager_for",
    "sse_event",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
