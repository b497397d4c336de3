"""``patcode serve``: check the settings, bind the port, run the gateway with uvicorn until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from patcode_core.errors import ConfigError
from patcode_core.i18n import t

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
ENV_FILE = Path(".env")


def _max_body() -> int:
    from patcode_core.gateway.app import DEFAULT_MAX_BODY

    raw = os.environ.get("PATCODE_SERVER_MAX_BODY", "").strip()
    if not raw:
        return DEFAULT_MAX_BODY
    if not raw.isdigit() or not 1024 <= int(raw) <= 1024**3:
        raise ConfigError(t("serve.bad_max_body", value=raw[:40]), t("serve.max_body_how"))
    return int(raw)


def _http_client() -> str:
    """aiohttp under the providers' clients when it is installed (a fifth of httpx's CPU per request), unless
    ``PATCODE_HTTP_CLIENT`` says otherwise."""
    import importlib.util

    chosen = os.environ.get("PATCODE_HTTP_CLIENT", "").strip()
    if chosen:
        return chosen
    return "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpx"


def _token() -> str | None:
    value = os.environ.get("PATCODE_SERVER_TOKEN", "").strip()
    return value or None


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error (port taken, address not here)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(t("serve.bad_host", host=host, reason=exc.strerror or str(exc)), t("serve.host_how")) from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise ConfigError(t("serve.cannot_bind", host=host, port=port, reason=exc.strerror or str(exc)),
                          t("serve.port_how")) from None
    listener.set_inheritable(True)
    return listener


def url_of(listener: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 in brackets)."""
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Serve until stopped; returns the exit status.

    :raises ConfigError: a bind beyond loopback without ``PATCODE_SERVER_TOKEN``, a short token,
        a bad ``PATCODE_SERVER_MAX_BODY``, a port in use; the message says what to do.
    """
    from patcode_core.gateway.access import check_bind

    if not 0 <= port <= 65535:
        raise ConfigError(t("serve.bad_port", port=port), t("serve.port_how"))
    token = _token()
    check_bind(host, token)
    max_body = _max_body()
    try:
        import uvicorn

        from patcode_core.gateway.app import create_app
    except ImportError as exc:
        raise ConfigError(t("serve.missing", module=exc.name or "?"),
                          t("serve.install", command=f"{sys.executable} -m pip install 'patcode-core[serve]'")) from None
    from patcode_core.manager import LLMManager

    listener = _bind(host, port)
    manager = LLMManager(http_client=_http_client())
    app = create_app(manager, token=token, bind_host=host, max_body=max_body, env_file=ENV_FILE)
    url = url_of(listener)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                print(t("serve.listening", url=url), flush=True)
                print(t("serve.auth_on") if token else t("serve.auth_off"), file=sys.stderr, flush=True)

    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=5)
    Server(config).run(sockets=[listener])
    print(t("serve.stopped"), file=sys.stderr)
    return 0
