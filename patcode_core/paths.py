"""Where PatCode keeps its files: ``PATCODE_HOME`` or the user's data directory."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "patcode"


def data_dir() -> Path:
    """``PATCODE_HOME`` when set, else the platform's user data directory (``~/.local/share/patcode`` on Linux).

    The directory is not created here; writers create it when they need it.
    """
    override = os.environ.get("PATCODE_HOME", "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def history_file() -> Path:
    """The interactive session's input history, kept across sessions."""
    return data_dir() / "history"
