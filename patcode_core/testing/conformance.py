"""The conformance suite: what every provider plugin must do, checked against its own description.

A plugin's test module writes::

    from patcode_core.testing import ConformanceSuite, ProviderDescription, WireCase

    class TestAcmeConformance(ConformanceSuite):
        description = ProviderDescription(plugin="acme", success=WireCase(json=...), expected_text="...", ...)

and pytest runs every check of :mod:`patcode_core.testing.checks` on the
plugin alone, with its answers played by respx, one test per check (and per
error case, and per way to cut a stream). The tests are plain functions that
run the check on an event loop of their own: no pytest-asyncio needed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar

import pytest

from patcode_core.testing.checks import (
    check_cost,
    check_cut_stream,
    check_error_kind,
    check_fallback,
    check_no_key_in_errors,
    check_retry,
    check_static,
    check_stream,
    check_stream_chunks,
    check_success,
)
from patcode_core.testing.description import ErrorCase, ProviderDescription
from patcode_core.testing.kit import Kit

#: How a stream is cut: its body ends, or its connection resets.
CUTS = ("eof", "reset")


class ConformanceSuite:
    """Subclass it as ``TestSomething`` with a ``description``: pytest runs every check on that plugin.

    Each test's name says its check; ``description.known_failures`` names
    those expected to fail (``"cost"``, ``"error_kind[rate_limit-429]"``).
    """

    description: ClassVar[ProviderDescription]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "patcode_error_case" in metafunc.fixturenames:
            cases = self.description.error_cases()
            metafunc.parametrize("patcode_error_case", cases, ids=[case.id for case in cases])
        if "patcode_cut" in metafunc.fixturenames:
            metafunc.parametrize("patcode_cut", CUTS)

    @pytest.fixture
    def patcode_kit(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Kit:
        return Kit(self.description, monkeypatch, tmp_path)

    def test_static(self, patcode_kit: Kit) -> None:
        patcode_kit.run("static", check_static)

    def test_success(self, patcode_kit: Kit) -> None:
        patcode_kit.run("success", check_success)

    def test_cost(self, patcode_kit: Kit) -> None:
        patcode_kit.run("cost", check_cost)

    def test_error_kind(self, patcode_kit: Kit, patcode_error_case: ErrorCase) -> None:
        patcode_kit.run(f"error_kind[{patcode_error_case.id}]", check_error_kind, patcode_error_case)

    def test_fallback(self, patcode_kit: Kit, patcode_error_case: ErrorCase) -> None:
        patcode_kit.run(f"fallback[{patcode_error_case.id}]", check_fallback, patcode_error_case)

    def test_retry(self, patcode_kit: Kit, patcode_error_case: ErrorCase) -> None:
        patcode_kit.run(f"retry[{patcode_error_case.id}]", check_retry, patcode_error_case)

    def test_no_key_in_errors(self, patcode_kit: Kit, patcode_error_case: ErrorCase) -> None:
        patcode_kit.run(f"no_key[{patcode_error_case.id}]", check_no_key_in_errors, patcode_error_case)

    def test_stream_chunks(self, patcode_kit: Kit) -> None:
        patcode_kit.run("stream_chunks", check_stream_chunks)

    def test_stream(self, patcode_kit: Kit) -> None:
        patcode_kit.run("stream", check_stream)

    def test_cut_stream(self, patcode_kit: Kit, patcode_cut: str) -> None:
        patcode_kit.run(f"cut_stream[{patcode_cut}]", check_cut_stream, patcode_cut)


def conformance_tests(description: ProviderDescription, name: str = "TestConformance") -> type[ConformanceSuite]:
    """The suite for ``description`` as a new test class: ``TestAcmeConformance = conformance_tests(DESCRIPTION)``."""
    return type(name, (ConformanceSuite,), {"description": description, "__module__": _caller_module()})


def _caller_module() -> str:
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    return caller.f_globals.get("__name__", __name__) if caller is not None else __name__
