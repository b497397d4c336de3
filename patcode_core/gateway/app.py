"""The gateway's ASGI app: routes, the access rules in front of them, and what they share."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as Endpoint
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patcode_core.gateway import api, page_actions
from patcode_core.gateway.access import Access
from patcode_core.gateway.api_errors import ApiError, from_exception
from patcode_core.gateway.chat_request import Route
from patcode_core.gateway.login_limit import LoginLimit
from patcode_core.gateway.metrics import GatewayMetrics
from patcode_core.gateway.model_list import ModelCatalog
from patcode_core.i18n import language_from_setting, language_override, t
from patcode_core.log import get_logger

if TYPE_CHECKING:
    from patcode_core.manager import LLMManager

DEFAULT_MAX_BODY = 4 * 1024 * 1024
OPENAPI = Path(__file__).with_name("openapi.json")
#: Paths that answer machines: JSON errors, bearer token. Anything else is the page.
API_PATHS = ("/v1/", "/metrics", "/readyz", "/openapi.json")
OPEN_PATHS = ("/healthz",)
_ENDPOINTS = {"/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics", "/openapi.json", "/"}


class Gateway:
    """What the endpoints share: the manager, the access rules, the metrics, the limits.

    :param env_file: where the page persists the fallback order (the ``.env`` ``llm switch`` writes).
    """

    def __init__(self, manager: LLMManager, access: Access, max_body: int, env_file: Path) -> None:
        self.manager = manager
        self.access = access
        self.max_body = max_body
        self.env_file = env_file
        self.metrics = GatewayMetrics(manager)
        self.catalog = ModelCatalog(manager)
        self.started = time.time()
        #: The page's latest "test" result per provider: (ok, text).
        self.tests: dict[str, tuple[bool, str]] = {}
        #: What the next page view tells each browser (kind, text), by the browser's CSRF cookie.
        self.flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        #: Wrong tokens at the page's login, per client address.
        self.login_limit = LoginLimit()

    def resolve(self, route: Route) -> Route:
        """The route a ``model`` names; a bare model name goes to the provider configured with it; else a 404."""
        manager = self.manager
        if route.provider is None or route.provider in manager.installed:
            return route
        for name in manager.installed:
            if route.raw in self.catalog.configured(name):
                return Route(name, route.raw, route.raw)
        raise ApiError(404, t("gateway.unknown_model", model=route.raw[:100]), code="model_not_found", param="model")


def request_language(accept_language: str | None) -> str | None:
    """The language a browser asks for (``Accept-Language``), when it is one PatCode speaks; ``PATCODE_LANG`` wins."""
    import os

    if os.environ.get("PATCODE_LANG", "").strip():
        return None
    for item in (accept_language or "").split(","):
        found = language_from_setting(item.split(";")[0].replace("-", "_"))
        if found:
            return found
    return None


class Guard:
    """In front of every route: the ``Host`` rule, the bearer token on API paths, the language, the HTTP counter."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        path: str = scope["path"]
        access = self.gateway.access
        endpoint = path if path in _ENDPOINTS else ("/ui" if path.startswith("/ui/") else "other")
        status = {"code": 500}

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        token = language_override.set(request_language(headers.get("accept-language")))
        try:
            refusal = None
            if not access.host_allowed(headers.get("host")):
                refusal = ApiError(403, t("gateway.bad_host"), "permission_error", "host_not_allowed")
            elif path.startswith(API_PATHS) and not access.bearer_ok(headers.get("authorization")):
                refusal = ApiError(401, t("gateway.bad_token"), "authentication_error", "invalid_api_key",
                                   headers={"WWW-Authenticate": "Bearer"})
            if refusal is not None:
                await api.error_response(refusal)(scope, receive, counted)
            else:
                await self.app(scope, receive, counted)
        finally:
            language_override.reset(token)
            self.gateway.metrics.http.labels(endpoint, str(status["code"])).inc()


def _api(handler: Any) -> Any:
    """An endpoint whose every failure is answered in the chat-completions API's shape (an unexpected one logged, never a traceback)."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Exception as exc:
            error = from_exception(exc)
            if error.status == 500:
                get_logger().error("gateway_error", path=request.url.path, error=repr(exc))
            return api.error_response(error)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def _openapi(request: Request) -> Response:
    return Response(OPENAPI.read_bytes(), media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    message = t("gateway.no_such_path", method=request.method, path=request.url.path[:100]) if status in (404, 405) \
        else t("gateway.unexpected", error=type(exc).__name__)
    return JSONResponse(ApiError(status, message, "invalid_request_error", code).body(), status_code=status,
                        headers=getattr(exc, "headers", None))


def create_app(
    manager: LLMManager,
    *,
    token: str | None = None,
    bind_host: str = "127.0.0.1",
    max_body: int = DEFAULT_MAX_BODY,
    env_file: Path = Path(".env"),
) -> Guard:
    """The gateway over ``manager`` (closed when the app shuts down).

    :param token: ``PATCODE_SERVER_TOKEN``: required on every endpoint but ``/healthz`` when set.
    :param bind_host: the address it listens on (a loopback name besides ``localhost`` is accepted in ``Host``).
    :param max_body: the largest request body, in bytes (413 beyond).
    :param env_file: where the page persists the fallback order.
    """
    gateway = Gateway(manager, Access(token, bind_host), max_body, env_file)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await manager.aclose()

    routes = [
        Endpoint("/v1/chat/completions", _api(api.chat_completions), methods=["POST"]),
        Endpoint("/v1/models", _api(api.models), methods=["GET"]),
        Endpoint("/healthz", api.healthz, methods=["GET"]),
        Endpoint("/readyz", api.readyz, methods=["GET"]),
        Endpoint("/metrics", api.metrics, methods=["GET"]),
        Endpoint("/openapi.json", _openapi, methods=["GET"]),
        *page_actions.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error, Exception: _http_error})
    app.state.gateway = gateway
    return Guard(app, gateway)
