""".env read once per settings load, and the same values handed to every settings class.

pydantic-settings reads ``.env`` again for each settings class (the core's and
every plugin's), and python-dotenv's variable expansion copies the whole
environment for each line: a 20,000-line file took ~30 s and a line it could
not parse was warned about once per class, in English, then dropped.

:func:`read_dotenv` parses the file once with python-dotenv's own parser (so
quoting, ``export``, comments and ``${VAR}`` expansion behave exactly as
before) and remembers the number of each line it could not parse, so the
caller reports it once. :class:`SharedDotenvSource` is a pydantic-settings
source that serves those values, matched the way pydantic-settings matches
them (case-insensitive unless the class says otherwise).
"""

from __future__ import annotations

import io
import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv.parser import parse_stream
from dotenv.variables import Literal, parse_variables
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

ENCODING = "utf-8"


@dataclass(frozen=True, slots=True)
class DotenvFile:
    """What one ``.env`` holds.

    :param path: the file read (``None``: no file was asked for).
    :param values: each variable as written in the file (name case kept), its
        value after ``${VAR}`` expansion; ``None`` for a bare ``NAME`` line.
    :param unreadable_lines: the line numbers (1-based) of statements that
        could not be parsed; their variables are not in ``values``.
    """

    path: Path | None = None
    values: Mapping[str, str | None] = field(default_factory=dict)
    unreadable_lines: tuple[int, ...] = ()

    def get(self, name: str) -> str | None:
        """The value of ``name``, matched case-insensitively (the last definition wins)."""
        wanted = name.lower()
        found = None
        for key, value in self.values.items():
            if key.lower() == wanted:
                found = value
        return found


def parse_dotenv(text: str, path: Path | None = None) -> DotenvFile:
    """Parse ``.env`` text as python-dotenv does, keeping the lines it could not parse."""
    bindings: list[tuple[str, str | None]] = []
    unreadable: list[int] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            unreadable.append(binding.original.line)
        elif binding.key is not None:
            bindings.append((binding.key, binding.value))
    return DotenvFile(path, _expand(bindings), tuple(unreadable))


def read_dotenv(path: str | os.PathLike[str] | None, encoding: str = ENCODING) -> DotenvFile:
    """Read and parse ``path``; a missing file (or a directory) is empty, as pydantic-settings treats it.

    :raises UnicodeDecodeError: the file is not valid ``encoding``.
    :raises OSError: the file exists but cannot be read.
    """
    if path is None:
        return DotenvFile()
    file_path = Path(path).expanduser()
    if not (file_path.is_file() or file_path.is_fifo()):
        return DotenvFile(file_path)
    # Text mode, as python-dotenv opens it: universal newlines, BOM removed by the parser.
    with open(file_path, encoding=encoding) as stream:
        text = stream.read()
    return parse_dotenv(text, file_path)


def _expand(bindings: list[tuple[str, str | None]]) -> dict[str, str | None]:
    """``${VAR}`` / ``${VAR:-default}`` expansion as ``dotenv_values`` does it, in linear time.

    A variable refers to an earlier line of the file first, then to the
    environment (python-dotenv's ``override=True``).
    """
    values: dict[str, str | None] = {}
    lookup = ChainMap(values, os.environ)  # type: ignore[arg-type]
    for name, value in bindings:
        if value is not None and "${" in value:
            atoms = list(parse_variables(value))
            if not all(isinstance(atom, Literal) for atom in atoms):
                value = "".join(atom.resolve(lookup) for atom in atoms)
        values[name] = value
    return values


class SharedDotenvSource(DotEnvSettingsSource):
    """A ``.env`` source that serves an already parsed :class:`DotenvFile` instead of reading the file."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: DotenvFile) -> None:
        self._dotenv = dotenv
        super().__init__(settings_cls, env_file=dotenv.path)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The same normalisation DotEnvSettingsSource applies to the file it reads.
        return parse_env_vars(self._dotenv.values, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def __call__(self) -> dict[str, Any]:
        if self.config.get("extra") == "ignore":
            # The parent then walks every other line of the file looking for
            # extra fields, only for the model to drop them: skip that work.
            return EnvSettingsSource.__call__(self)
        return super().__call__()


_PLAIN_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:/@+-")


def write_settings(path: Path, values: Mapping[str, str]) -> None:
    """Set each ``NAME=value`` in the ``.env`` at ``path``, replacing earlier lines, keeping every other line.

    A value with characters outside a plain set is written in single quotes;
    one with a newline, a NUL or a quote of that kind is refused, so no value
    can smuggle a second setting into the file.

    :raises ValueError: for such a value.
    """
    rendered = {}
    for name, value in values.items():
        if any(char in value for char in "\n\r\0'"):
            raise ValueError(f"{name}: value cannot be written to .env")
        rendered[name] = value if set(value) <= _PLAIN_VALUE else f"'{value}'"
    lines = path.read_text(encoding=ENCODING).splitlines() if path.exists() else []
    written: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.strip().removeprefix("export ").lstrip()
        name = stripped.partition("=")[0].strip()
        if "=" in stripped and name in rendered:
            lines[index] = f"{name}={rendered[name]}"
            written.add(name)
    lines.extend(f"{name}={value}" for name, value in rendered.items() if name not in written)
    path.write_text("\n".join(lines) + "\n", encoding=ENCODING)
