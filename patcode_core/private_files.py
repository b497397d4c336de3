"""Files only their owner may read: the data directory (0700), the history database and the input history (0600).

Prompts, answers and the shape of a user's work live in these files, so
nobody else on the machine should read them. New ones are created private
(before SQLite or prompt_toolkit opens them, so there is no moment when they
are not); ones an older PatCode left readable by others are tightened the
first time they are opened, with one warning line naming the file and its
old mode. SQLite gives the ``-wal`` and ``-shm`` files the database's mode.

A directory is tightened only when it is PatCode's own: owned by this user
and holding nothing but PatCode's files (:data:`patcode_core.paths.OWN_FILES`).
A ``PATCODE_HOME`` pointing at a shared place (``$HOME``, ``/tmp``) keeps its
mode; the files in it are private all the same.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from patcode_core.paths import OWN_FILES

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = 0o077  # group and other permission bits


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; tighten it if it is PatCode's own and looser.

    :raises OSError: when it cannot be created.
    """
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True)
    except FileExistsError:
        if path.is_dir() and _own_directory(path):
            tighten(path)
        elif not path.is_dir():
            raise


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; an existing one is tightened.

    :raises OSError: when it does not exist and cannot be created.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        tighten(path)
    else:
        os.close(descriptor)


def tighten(path: Path) -> bool:
    """Take away group and other permissions from ``path`` if it has any; returns True when it did.

    Only the owner's files are changed (anyone else's would fail anyway);
    the warning names the file and its old mode. A file that cannot be
    changed (a read-only file system) is left as it is, with a debug line.
    """
    from patcode_core.log import get_logger

    try:
        status = os.stat(path)
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(status.st_mode)
    if not mode & _OTHERS or status.st_uid != os.geteuid():
        return False
    try:
        os.chmod(path, mode & ~_OTHERS)
    except OSError as exc:
        get_logger().debug("private_file_unchanged", path=str(path), mode=f"{mode:04o}", error=exc.strerror or str(exc))
        return False
    get_logger().warning("private_file_tightened", path=str(path), mode=f"{mode:04o}", new=f"{mode & ~_OTHERS:04o}")
    return True


def _own_directory(path: Path) -> bool:
    """True when ``path`` holds nothing but PatCode's own files (an empty one counts)."""
    try:
        with os.scandir(path) as entries:
            return all(entry.name in OWN_FILES for entry in entries)
    except OSError:
        return False
