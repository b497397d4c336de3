"""Where PatCode keeps its files: ``PATCODE_HOME`` or the user's data directory."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "patcode"
#: The usage history and the response cache (SQLite; ``-wal`` and ``-shm`` beside it while in use).
DATABASE_NAME = "patcode.db"
#: The interactive session's input history.
HISTORY_NAME = "history"
#: Every file PatCode itself puts in its data directory: a directory holding nothing else is PatCode's own.
OWN_FILES = frozenset(
    {DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal", HISTORY_NAME}
)


def data_dir() -> Path:
    """``PATCODE_HOME`` when set, else the platform's user data directory (``~/.local/share/patcode`` on Linux).

    The directory is not created here; writers create it when they need it
    (:func:`patcode_core.private_files.private_dir`, mode 0700).

    :raises ConfigError: when ``PATCODE_HOME`` starts with ``~user`` and that user's home cannot be found.
    """
    override = os.environ.get("PATCODE_HOME", "").strip()
    if override:
        try:
            return Path(override).expanduser()
        except RuntimeError:
            from patcode_core.errors import ConfigError
            from patcode_core.i18n import t

            raise ConfigError(t("store.home_invalid", value=override, prefix=override.split("/", 1)[0])) from None
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def history_file() -> Path:
    """The interactive session's input history, kept across sessions."""
    return data_dir() / HISTORY_NAME
