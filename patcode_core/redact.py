"""Keeps API keys and URL passwords out of every message, log line and error PatCode produces.

Three nets, applied together by :func:`redact`:

- every secret value the settings hold (each ``SecretStr`` of the core and of
  every plugin, and the password of any ``user:password@`` URL), registered
  once with :func:`remember` when the settings are loaded;
- the password part of any URL written in the text;
- strings shaped like a provider key or a bearer token, for a key PatCode was
  never told about (a provider echoing a masked key).

The registry is process-wide on purpose: a log line or a plugin's import
error can be printed by code that never saw the settings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

MASK = "***"
#: Shorter values are not registered: masking them would mangle ordinary words.
MIN_SECRET_LENGTH = 4

# Key shapes of common providers (also the masked forms they echo back, e.g.
# "Incorrect API key provided: sk-proj-****abcd"), and bearer tokens.
_KEY_PATTERN = re.compile(
    r"(?:\b(?:sk|gsk|pk|rk|xai|key)[-_][A-Za-z0-9*_\-]{6,})|(?:(?<=Bearer )[A-Za-z0-9._\-*~+/=]{8,})"
    r"|(?:\bAIza[A-Za-z0-9_\-]{30,})"  # Google API keys (quoted back in some of Google's errors)
)
# scheme://user:password@host — the password goes, the user stays.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)(?=@)")

_lock = threading.Lock()
_known: tuple[str, ...] = ()


def remember(values: Iterable[str | None]) -> None:
    """Add secret values to the registry every later :func:`redact` call removes."""
    global _known
    fresh = {value for value in values if value and len(value) >= MIN_SECRET_LENGTH}
    if not fresh:
        return
    with _lock:
        # Longest first, so a secret that contains another is masked whole.
        _known = tuple(sorted(set(_known) | fresh, key=len, reverse=True))


def forget_all() -> None:
    """Empty the registry (tests use this between cases)."""
    global _known
    with _lock:
        _known = ()


def url_password(url: str) -> str | None:
    """The password of a ``scheme://user:password@host`` URL, if it has one."""
    match = _URL_PASSWORD.search(url)
    return match.group("password") if match else None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, URL password and key-shaped token replaced by ``***``."""
    for secret in (*secrets, *_known):
        if secret and len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    return _KEY_PATTERN.sub(MASK, text)
