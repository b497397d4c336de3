"""What the private database servers of the tests share: a free loopback port, and skipping (or, under CI, failing)
when the server's package is not installed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

INSTALL_HINT = "scripts/install-test-servers (as root, or with sudo)"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require(found: Path | None, missing: str) -> Path:
    """``found``; when it is ``None``, skip the test saying ``missing`` and how to install it, except under CI, where
    the server must be there."""
    if found is None:
        message = f"{missing}: run {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install it before running the tests)")
        pytest.skip(message)
    return found
