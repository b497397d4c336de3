"""The page's routes: ``GET /`` and the POSTs that change something (login, fallback order, test, cache clear).

Each POST needs the page's session when a token is set, the CSRF token of
the browser's cookie, and, when the browser sends ``Origin``, this server's
own origin. The answer is a redirect back to the page (303), which shows
what happened.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from patcode_core.config import parse_fallback_order
from patcode_core.errors import PatCodeError
from patcode_core.gateway import page
from patcode_core.gateway.access import CSRF_COOKIE, SESSION_COOKIE, Access
from patcode_core.gateway.api import read_body
from patcode_core.gateway.api_errors import ApiError
from patcode_core.i18n import t
from patcode_core.log import get_logger

if TYPE_CHECKING:
    from patcode_core.gateway.app import Gateway

FORM_LIMIT = 64 * 1024
#: Messages waiting for the next page view, per browser (the oldest dropped beyond this many browsers).
FLASHES_KEPT = 1000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the page's own forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _flash(gateway: Gateway, browser: str, kind: str, message: str) -> None:
    flashes = gateway.flashes
    flashes[browser] = (kind, message)
    while len(flashes) > FLASHES_KEPT:
        flashes.popitem(last=False)


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway  # type: ignore[no-any-return]


def _html(body: str, status: int = 200, browser: str | None = None) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    if browser is not None:
        response.set_cookie(CSRF_COOKIE, browser, httponly=True, samesite="strict", path="/")
    return response


def _signed_in(request: Request, access: Access) -> bool:
    return access.session_ok(request.cookies.get(SESSION_COOKIE)) or (
        access.token is not None and access.bearer_ok(request.headers.get("authorization"))
    )


async def index(request: Request) -> Response:
    """``GET /``: the page (or the login form when a token is set and this browser has no session)."""
    gateway = _gateway(request)
    access = gateway.access
    known = request.cookies.get(CSRF_COOKIE)
    browser = known if known and len(known) <= 64 else Access.new_browser_id()
    csrf = access.csrf_token(browser)
    new_cookie = None if browser == known else browser
    if not _signed_in(request, access):
        flash = gateway.flashes.pop(browser, None)
        login = _html(page.login_page(csrf, flash[1] if flash and flash[0] == "error" else None), 401, new_cookie)
        login.headers["WWW-Authenticate"] = "Bearer"
        return login
    period = request.query_params.get("since", "24h")
    body = await page.main_page(gateway, period if period in page.series.PERIODS else "24h", csrf, gateway.flashes.pop(browser, None))
    return _html(body, 200, new_cookie)


async def _form(request: Request, need_session: bool = True) -> tuple[Gateway, str, dict[str, str]]:
    """The checked form of a POST: the browser's id and the fields; refusals raise :class:`ApiError`."""
    gateway = _gateway(request)
    access = gateway.access
    fields = {key: values[0] for key, values in parse_qs((await read_body(request, FORM_LIMIT)).decode("utf-8", "replace")).items()}
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise ApiError(403, t("page.bad_origin"), "permission_error", "csrf")
    browser = request.cookies.get(CSRF_COOKIE)
    if not access.csrf_ok(browser, fields.get("csrf")):
        raise ApiError(403, t("page.bad_csrf"), "permission_error", "csrf")
    if need_session and not _signed_in(request, access):
        raise ApiError(401, t("gateway.bad_token"), "authentication_error", "invalid_api_key")
    return gateway, str(browser), fields


def _refused(error: ApiError) -> Response:
    return PlainTextResponse(error.message, status_code=error.status, headers=SECURITY_HEADERS)


def _back() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def _locked_out(gateway: Gateway, seconds: int) -> str:
    limit = gateway.login_limit
    return t("page.login_locked", failures=limit.max_failures, window=f"{limit.window:g}", seconds=seconds)


async def login(request: Request) -> Response:
    """``POST /ui/login``: the token, once; the session cookie after; 429 to an address after too many wrong tokens."""
    try:
        gateway, browser, fields = await _form(request, need_session=False)
    except ApiError as error:
        return _refused(error)
    # No await from here on: check, comparison and count are one step, so parallel guesses cannot slip past the count.
    client = request.client.host if request.client else ""
    limit = gateway.login_limit
    wait = limit.retry_after(client)
    if wait:
        refused = _html(page.login_page(gateway.access.csrf_token(browser), _locked_out(gateway, wait)), 429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    session = gateway.access.login(fields.get("token", ""))
    response = _back()
    if session is not None:
        limit.succeeded(client)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
        return response
    locked = limit.failed(client)
    if locked:
        get_logger().warning("login_locked", client=client, failures=limit.max_failures, window=f"{limit.window:g}",
                             seconds=locked)
    _flash(gateway, browser, "error", _locked_out(gateway, locked) if locked else t("page.login_failed"))
    return response


async def order(request: Request) -> Response:
    """``POST /ui/order``: a new fallback order, in force at once and written to ``.env`` as ``llm switch`` does."""
    try:
        gateway, browser, fields = await _form(request)
    except ApiError as error:
        return _refused(error)
    text = fields.get("order", "")
    try:
        entries = parse_fallback_order(text)
        if any(char.isspace() or not char.isprintable() or char in "'\"#" for entry in entries for char in str(entry)):
            raise PatCodeError(t("page.order_bad_chars"))
        gateway.manager.set_fallback_order(entries)
        from patcode_core.dotenv_file import write_settings

        saved = gateway.manager.fallback_order
        write_settings(gateway.env_file, {"LLM_FALLBACK_ORDER": ",".join(map(str, saved)), "LLM_DEFAULT_PROVIDER": saved[0].provider})
    except PatCodeError as exc:
        _flash(gateway, browser, "error", gateway.manager.scrub(str(exc)))
        return _back()
    except OSError as exc:
        _flash(gateway, browser, "error", t("page.order_not_saved", file=str(gateway.env_file), reason=exc.strerror or repr(exc)))
        return _back()
    message = t("page.order_saved", order=", ".join(map(str, saved)), file=str(gateway.env_file))
    if os.environ.get("LLM_FALLBACK_ORDER") or os.environ.get("LLM_DEFAULT_PROVIDER"):
        message += " " + t("page.order_env_overrides")
    _flash(gateway, browser, "ok", message)
    return _back()


async def test(request: Request) -> Response:
    """``POST /ui/test``: a tiny real completion to one provider, no fallback; the page shows the outcome."""
    try:
        gateway, browser, fields = await _form(request)
    except ApiError as error:
        return _refused(error)
    name = fields.get("provider", "").strip().lower()
    if name not in gateway.manager.installed:
        _flash(gateway, browser, "error", t("page.unknown_provider", provider=name[:60]))
        return _back()
    try:
        result = await gateway.manager.test(name)
        outcome = (True, t("page.test_ok", model=result.model, seconds=f"{result.latency:.2f}", answer=result.text.strip()[:200]))
    except PatCodeError as exc:
        outcome = (False, gateway.manager.scrub(str(exc)))
    gateway.tests.pop(name, None)
    gateway.tests[name] = outcome
    return _back()


async def clear_cache(request: Request) -> Response:
    """``POST /ui/cache/clear``: forget every cached answer."""
    try:
        gateway, browser, _ = await _form(request)
    except ApiError as error:
        return _refused(error)
    try:
        count = await asyncio.to_thread(gateway.manager.usage.store.clear_cache)  # a server may be slow
        _flash(gateway, browser, "ok", t("page.cache_cleared", count=count))
    except PatCodeError as exc:
        _flash(gateway, browser, "error", str(exc))
    return _back()


def routes() -> list[Route]:
    """The page's routes."""
    return [
        Route("/", index, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/order", order, methods=["POST"]),
        Route("/ui/test", test, methods=["POST"]),
        Route("/ui/cache/clear", clear_cache, methods=["POST"]),
    ]
