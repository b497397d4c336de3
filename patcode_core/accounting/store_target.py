"""Which usage store ``LLM_STATS_STORE`` names, checked, shown without its password, and opened.

- ``on`` (the default): SQLite, ``patcode.db`` in the data directory;
- ``off``: memory only, bounded;
- ``postgresql://user:password@host:port/database`` (or ``postgres://``,
  with libpq's ``?param=value`` options): PostgreSQL, one history shared by
  every PatCode that names it. Needs psycopg 3 (``patcode-core[postgres]``).

A URL's password is never shown: :func:`masked_url` is how a URL appears in
any message, and :func:`url_secrets` is what the settings register for
:mod:`patcode_core.redact`. Nothing here imports psycopg unless a URL is
checked or opened.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from patcode_core.i18n import t
from patcode_core.redact import MASK

if TYPE_CHECKING:
    from patcode_core.accounting.store_base import QueuedStore

SCHEMES = ("postgresql", "postgres")
#: Query parameters of a libpq URL that hold a secret.
_SECRET_PARAMETERS = ("password", "sslpassword")


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` or ``postgres://`` URL (by its scheme alone)."""
    if not isinstance(value, str):
        return False
    scheme, separator, _ = value.strip().partition("://")
    return bool(separator) and scheme.lower() in SCHEMES


def check_stats_store(value: object) -> str:
    """``LLM_STATS_STORE`` as it is kept: ``on`` / ``off`` in lower case, a PostgreSQL URL trimmed.

    :raises ValueError: with the reason in the user's language (never the URL or its password).
    """
    text = str(value).strip()
    if text.lower() in ("on", "off"):
        return text.lower()
    if not is_postgres_url(text):
        raise ValueError(t("config.reason.stats_store"))
    problem = _url_problem(text)
    if problem is not None:
        raise ValueError(t("config.reason.stats_store_url", problem=problem))
    return text


def _url_problem(url: str) -> str | None:
    """What is wrong with a PostgreSQL URL, in words that quote none of it; ``None`` when libpq would take it."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return t("config.reason.url_spaces")
    try:
        urlsplit(url).port  # noqa: B018 - the property checks the port
    except ValueError:
        return t("config.reason.url_port")
    if importlib.util.find_spec("psycopg") is not None:
        import psycopg

        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error:  # its message may quote the URL: not shown
            return t("config.reason.url_syntax")
    return None


def _authority(url: str) -> tuple[str, str, str]:
    """``(scheme://, user info, the rest)`` of a URL, loosely: it works on a malformed one too."""
    scheme, _, rest = url.partition("://")
    end = min((index for index in (rest.find("/"), rest.find("?")) if index >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" not in authority:
        return f"{scheme}://", "", rest
    userinfo, _, host = authority.rpartition("@")
    return f"{scheme}://", userinfo, f"@{host}{tail}"


def url_secrets(url: str) -> list[str]:
    """Every secret written in a URL (its password, ``?password=``), as written and decoded, for redaction."""
    if not is_postgres_url(url):
        return []
    _, userinfo, rest = _authority(url.strip())
    found = [userinfo.partition(":")[2]] if ":" in userinfo else []
    query = rest.partition("?")[2]
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if unquote(name).lower() in _SECRET_PARAMETERS:
            found.append(value)
    return [secret for raw in found for secret in {raw, unquote(raw)} if secret]


def masked_url(url: str) -> str:
    """The URL with its password (and any ``?password=``) shown as ``***``: how a URL appears in messages."""
    head, userinfo, rest = _authority(url.strip())
    if ":" in userinfo:
        userinfo = f"{userinfo.partition(':')[0]}:{MASK}"
    path, separator, query = rest.partition("?")
    if separator:
        pairs = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            pairs.append(f"{name}={MASK}" if equals and unquote(name).lower() in _SECRET_PARAMETERS else pair)
        query = "&".join(pairs)
    return f"{head}{userinfo}{path}{separator}{query}"


def open_store(target: Path | str | None) -> QueuedStore:
    """The store ``target`` names: a PostgreSQL URL, a SQLite file, or memory (``None``).

    :raises StoreUnavailable: when it cannot be used (psycopg missing, a server that refuses us,
        a damaged file, a newer schema); the message never holds a password.
    """
    from patcode_core.accounting.store_base import StoreUnavailable

    if is_postgres_url(target):
        assert isinstance(target, str)
        if importlib.util.find_spec("psycopg") is None:
            command = f"{shlex.quote(sys.executable)} -m pip install 'psycopg[binary]>=3.2'"
            raise StoreUnavailable(t("store.needs_psycopg", command=command))
        from patcode_core.accounting.store_postgres import PostgresStore

        return PostgresStore(target)
    from patcode_core.accounting.store import UsageStore

    return UsageStore(None if target is None else Path(target))


def shown_target(target: Path | str | None) -> str:
    """``target`` as a message shows it: a URL without its password, a path, or ``:memory:``."""
    if target is None:
        return ":memory:"
    return masked_url(target) if is_postgres_url(target) else str(target)
