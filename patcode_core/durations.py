"""Go-style durations as providers send them in ``x-ratelimit-reset-*`` headers."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in ``1s``, ``6m0s``, ``2m59.56s``, ``12ms`` or a bare ``7.5``; ``None`` if unreadable."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        return None
    return total
