"""Keeps API keys out of every message, log line and error PatCode produces."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# Key shapes of common providers (also the masked forms they echo back, e.g.
# "Incorrect API key provided: sk-proj-****abcd"), and bearer tokens.
_KEY_PATTERN = re.compile(
    r"(?:\b(?:sk|gsk|pk|rk|xai|key)[-_][A-Za-z0-9*_\-]{6,})|(?:(?<=Bearer )[A-Za-z0-9._\-*]{8,})"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and every key-shaped token replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return _KEY_PATTERN.sub(MASK, text)
