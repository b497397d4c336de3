"""Go-style durations as providers send them in ``x-ratelimit-reset-*`` headers.

Anything read from the network is hostile until proven otherwise: a wait is a
finite number of seconds, at least 0 and at most :data:`MAX_WAIT`, or it is
unreadable (``None``). Nothing here raises, whatever the text.
"""

from __future__ import annotations

import math
import re

MAX_WAIT = 86_400.0
"""The longest wait a provider can impose through a header: one day. Longer ones are cut to it."""

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_BARE = re.compile(_NUMBER)
_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")


def sane_wait(seconds: float, cap: float | None = MAX_WAIT) -> float | None:
    """``seconds`` as a wait: ``None`` if it is not finite or below 0, else cut to ``cap`` (``None``: no cap)."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds if cap is None else min(seconds, cap)


def parse_duration(text: str | None, cap: float | None = MAX_WAIT) -> float | None:
    """Seconds in ``1s``, ``6m0s``, ``2m59.56s``, ``12ms`` or a bare ``7.5``; ``None`` if unreadable.

    Only ASCII digits and Go's units are read: no sign, no exponent, no
    ``inf``/``nan``. A duration too large for a float is unreadable; a finite one
    longer than ``cap`` (default :data:`MAX_WAIT`; ``None``: no cap) is cut to it.
    """
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    if _BARE.fullmatch(text):
        return sane_wait(float(text), cap)
    position = 0
    total = 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sane_wait(total, cap)
