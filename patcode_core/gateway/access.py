"""Who may use the gateway: the bind rule, the bearer token, the page's session and its CSRF tokens.

- Without ``PATCODE_SERVER_TOKEN`` the gateway only binds to loopback, and
  only answers requests whose ``Host`` is a loopback name, so a web page
  elsewhere cannot reach it through DNS rebinding.
- With a token, every endpoint but ``/healthz`` needs ``Authorization:
  Bearer <token>``; the page logs in once and keeps a session cookie
  (HttpOnly, SameSite=Strict) that proves the token without holding it.
- Every change made from the page is a POST carrying a CSRF token bound to
  a cookie of the browser's own, checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

from patcode_core.errors import ConfigError
from patcode_core.i18n import t

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
MIN_TOKEN_LENGTH = 16
SESSION_COOKIE = "patcode_session"
CSRF_COOKIE = "patcode_csrf"
TOKEN_COMMAND = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token, or with a token too short to resist guessing.

    :raises ConfigError: naming the cause and the fix.
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(t("gateway.token_short", length=MIN_TOKEN_LENGTH), t("gateway.token_how", command=TOKEN_COMMAND))
    if token is None and not is_loopback(host):
        raise ConfigError(t("gateway.token_required", host=host), t("gateway.token_how", command=TOKEN_COMMAND))


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, port dropped (``[::1]:8787`` → ``::1``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Access:
    """The checks of one running gateway.

    :param token: ``PATCODE_SERVER_TOKEN``, or ``None``.
    :param bind_host: the address it listens on (also accepted as a ``Host``).
    """

    def __init__(self, token: str | None, bind_host: str = "127.0.0.1") -> None:
        self.token = token
        self._secret = os.urandom(32)  # sessions and CSRF tokens last as long as this process
        self._hosts = LOOPBACK_NAMES | {bind_host.strip("[]").lower()}
        self._session = self._sign(b"session\0" + token.encode()) if token else ""

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def host_allowed(self, host_header: str | None) -> bool:
        """With no token, only loopback names may be in ``Host`` (a rebound DNS name is refused)."""
        if self.token is not None:
            return True
        return host_header is not None and _host_name(host_header) in self._hosts

    def bearer_ok(self, authorization: str | None) -> bool:
        """True when no token is set, or ``Authorization`` carries it."""
        if self.token is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def login(self, offered: str) -> str | None:
        """The session cookie's value when ``offered`` is the token, else ``None``."""
        if self.token is None or not hmac.compare_digest(offered.strip().encode(), self.token.encode()):
            return None
        return self._session

    def session_ok(self, cookie: str | None) -> bool:
        """True when no token is set, or the cookie is this process's session."""
        return self.token is None or (cookie is not None and hmac.compare_digest(cookie.encode(), self._session.encode()))

    @staticmethod
    def new_browser_id() -> str:
        """A random value for the CSRF cookie."""
        return os.urandom(16).hex()

    def csrf_token(self, browser_id: str) -> str:
        """The token the page's forms carry, bound to the browser's CSRF cookie."""
        return self._sign(b"csrf\0" + browser_id.encode())

    def csrf_ok(self, browser_id: str | None, offered: str | None) -> bool:
        """True when the form's token matches the browser's cookie."""
        if not browser_id or not offered:
            return False
        return hmac.compare_digest(self.csrf_token(browser_id).encode(), offered.encode())
