"""Debian's Chromium driven by Playwright (sync API), for tests of the gateway's web page.

Playwright downloads no browser here: it starts the system's ``/usr/bin/chromium`` (``scripts/install-test-servers``
installs it; ``PATCODE_CHROMIUM`` names another) with the flags this machine's closed network needs. Playwright gives
every launch a fresh, empty profile directory of its own (it refuses ``--user-data-dir`` in ``launch``).

Fixtures: ``browser`` (one Chromium per test module) and ``new_page`` (a factory of pages, each in its own
context, so cookies never leak between tests; ``locale`` sets the page's ``Accept-Language``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from private_servers import require

#: Without the background-networking flags Chromium keeps trying to reach Google's hosts, refused on this network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: How long a Playwright action or expectation waits, in milliseconds.
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    """The Chromium executable to drive, or ``None`` when none is installed."""
    named = os.environ.get("PATCODE_CHROMIUM", "").strip()
    if named:
        return named if Path(named).is_file() else None
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


def require_chromium() -> str:
    """Chromium's path; skips the test when it is missing, except under CI, where it must be installed."""
    path = chromium_path()
    return str(require(Path(path) if path else None, "Chromium is not installed (/usr/bin/chromium)"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (Playwright's sync API)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(locale="es-ES")``: a page in a fresh browser context (its own cookies)."""
    contexts: list[Any] = []

    def make(locale: str = "es-ES", **options: Any) -> Any:
        context = browser.new_context(locale=locale, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
