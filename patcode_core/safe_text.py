"""Text from outside PatCode made safe to print: no terminal control, no hidden characters.

A provider's answer, an error body, a model name or a plugin's reason may
carry terminal escapes (OSC 52 writes the clipboard, OSC 0 the window title,
``ESC[2J`` clears the screen, OSC 8 hides a link), C1 controls, bidi
overrides that reorder what is shown (Trojan Source), zero-width characters,
or lone surrogates that cannot be encoded at all. Before PatCode prints such
text it passes through :func:`for_terminal`:

- C0 and C1 controls (except newline and tab), DEL, bidi controls and
  zero-width characters are shown escaped, as ``\\x1b`` or ``\\u202e``, so
  the user sees that something was there and nothing acts on the terminal;
- a lone surrogate becomes U+FFFD (the replacement character);
- ``\\r\\n`` becomes ``\\n``.

The mapping is per character, so a stream can be cleaned piece by piece: an
escape split across two pieces is still caught. PatCode's own styling is
added after cleaning, and only when colours are on (:func:`colors_on`). The
Python API returns text exactly as received.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

from patcode_core.redact import redact

# C0 but \t and \n; DEL and C1; the Arabic letter mark; zero-width and bidi marks;
# bidi embeddings/overrides/isolates; invisible operators; the BOM used as a
# zero-width no-break space; the Mongolian vowel separator; lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
    # A zero-width joiner is kept where it joins emoji (👨‍💻), escaped anywhere else.
    "|(?<![\U0001f000-\U0001faff\u2600-\u27bf\ufe0f])\u200d"
)
_UNSAFE_OR_NEWLINE = re.compile(_UNSAFE.pattern + "|[\n\t]")
REPLACEMENT = "\ufffd"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return REPLACEMENT
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """``text`` with every control, bidi and invisible character shown escaped (newlines and tabs kept)."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_escape, text)


def for_terminal_line(text: str) -> str:
    """Like :func:`for_terminal`, and newlines and tabs escaped too: for a name or a one-line field."""
    return _UNSAFE_OR_NEWLINE.sub(_escape, text)


def printable(text: str) -> str:
    """Any text from outside PatCode as it may be printed: secrets removed, controls shown escaped."""
    return for_terminal(redact(text))


def printable_line(text: str) -> str:
    """A one-line field from outside PatCode (a name, a model, a reason) as it may be printed."""
    return for_terminal_line(redact(text))


def without_surrogates(text: str) -> str:
    """``text`` as valid Unicode, so it encodes as UTF-8: surrogate pairs joined, a lone surrogate as U+FFFD.

    A lone surrogate comes from bytes that were not UTF-8 (``surrogateescape``)
    or from a broken ``\\ud800`` escape in a provider's JSON.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def no_color() -> bool:
    """True when the user asked for no colours (``NO_COLOR`` set and not empty, see no-color.org)."""
    return bool(os.environ.get("NO_COLOR"))


def colors_on(stream: TextIO) -> bool:
    """Whether PatCode may colour what it writes to ``stream``: a terminal, and no ``NO_COLOR``."""
    try:
        return stream.isatty() and not no_color()
    except (AttributeError, ValueError):  # a closed or bare stream
        return False
