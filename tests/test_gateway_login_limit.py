"""The page's login stops listening to an address after too many wrong tokens, in process (httpx's ASGI transport, a fake clock)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from helpers import FakeProvider, manager_with

from patcode_core.gateway.access import SESSION_COOKIE
from patcode_core.gateway.app import Guard, create_app
from patcode_core.gateway.login_limit import MAX_CLIENTS, LoginLimit

TOKEN = "a-long-server-token-0123456789"
WRONG = "not-the-server-token-000000"
ATTACKER = "203.0.113.7"


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATCODE_HOME", str(tmp_path))
    monkeypatch.setenv("PATCODE_LANG", "en")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(env: None, clock: FakeClock) -> Guard:
    guard = create_app(manager_with(FakeProvider("a")), token=TOKEN)
    guard.gateway.login_limit.clock = clock
    return guard


class Browser:
    """One browser at one client address: its cookies and the page's CSRF token."""

    def __init__(self, app: Guard, address: str) -> None:
        transport = httpx.ASGITransport(app=app, client=(address, 50123))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787")
        self.csrf = ""

    async def __aenter__(self) -> Browser:
        form = await self.http.get("/")
        assert form.status_code == 401 and 'id="login"' in form.text
        found = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert found is not None
        self.csrf = found.group(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def login(self, token: str) -> httpx.Response:
        return await self.http.post("/ui/login", data={"token": token, "csrf": self.csrf})

    async def notice(self) -> str:
        """The message the login form shows now."""
        page = await self.http.get("/")
        found = re.search(r'<p id="flash" class="error">([^<]*)</p>', page.text)
        return found.group(1) if found else ""


def signed_in(response: httpx.Response) -> bool:
    return response.status_code == 303 and SESSION_COOKIE in response.cookies


async def fail(browser: Browser, times: int) -> None:
    for _ in range(times):
        answer = await browser.login(WRONG)
        assert answer.status_code == 303 and SESSION_COOKIE not in answer.cookies


async def test_five_wrong_tokens_then_429_with_retry_after_and_the_cure(
    app: Guard, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 4)
        assert await browser.notice() == "The token is not right."
        await fail(browser, 1)
        assert "Wait 60 s" in await browser.notice()  # the fifth failure already says so

        refused = await browser.login(WRONG)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert refused.headers["content-type"].startswith("text/html")
        assert refused.headers["cache-control"] == "no-store" and "default-src 'none'" in refused.headers["content-security-policy"]
        assert 'id="login"' in refused.text and 'name="csrf"' in refused.text  # the form, with its error
        assert "Too many failed sign-ins" in refused.text and "Wait 60 s" in refused.text

        clock.now += 59.5
        late = await browser.login(WRONG)
        assert late.status_code == 429 and late.headers["retry-after"] == "1" and "Wait 1 s" in late.text
    logged = capsys.readouterr().err  # the operator hears of the lockout once, with the address
    assert logged.count(f"Too many wrong tokens at the page from {ATTACKER} (5 within 60 s)") == 1


async def test_the_right_token_is_refused_during_the_lockout_and_accepted_after(app: Guard, clock: FakeClock) -> None:
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 5)
        refused = await browser.login(TOKEN)
        assert refused.status_code == 429 and SESSION_COOKIE not in refused.cookies
        assert (await browser.http.get("/")).status_code == 401

        clock.now += 30
        assert (await browser.login(TOKEN)).status_code == 429  # trying again does not help, nor extend the wait
        assert (await browser.login(TOKEN)).headers["retry-after"] == "30"

        clock.now += 30
        assert signed_in(await browser.login(TOKEN))
        assert (await browser.http.get("/")).status_code == 200


async def test_a_right_token_clears_the_count(app: Guard) -> None:
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 4)
        assert signed_in(await browser.login(TOKEN))
        await fail(browser, 4)  # would be locked out at the second had the count not restarted
        assert (await browser.login(WRONG)).status_code == 303
        assert (await browser.login(TOKEN)).status_code == 429


async def test_failures_older_than_the_window_are_forgotten(app: Guard, clock: FakeClock) -> None:
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 4)
        clock.now += 60
        await fail(browser, 4)
        assert signed_in(await browser.login(TOKEN))


async def test_another_address_is_unaffected(app: Guard) -> None:
    async with Browser(app, ATTACKER) as attacker, Browser(app, "198.51.100.20") as neighbour:
        await fail(attacker, 5)
        assert (await attacker.login(TOKEN)).status_code == 429
        await fail(neighbour, 1)
        assert signed_in(await neighbour.login(TOKEN))
        assert (await attacker.login(TOKEN)).status_code == 429


async def test_the_api_bearer_token_has_no_lockout(app: Guard) -> None:
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 5)
        assert (await browser.login(TOKEN)).status_code == 429
        api = browser.http
        for _ in range(10):
            wrong = await api.get("/v1/models", headers={"Authorization": f"Bearer {WRONG}"})
            assert wrong.status_code == 401 and "retry-after" not in wrong.headers
        assert (await api.get("/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
    async with Browser(app, "198.51.100.30") as other:  # nor do wrong bearer tokens count against the page
        for _ in range(10):
            assert (await other.http.get("/v1/models", headers={"Authorization": f"Bearer {WRONG}"})).status_code == 401
        assert signed_in(await other.login(TOKEN))


async def test_parallel_guesses_cannot_slip_past_the_count(app: Guard) -> None:
    async with Browser(app, ATTACKER) as browser:
        answers = await asyncio.gather(*(browser.login(WRONG) for _ in range(20)))
    assert sorted(answer.status_code for answer in answers) == [303] * 5 + [429] * 15


async def test_the_lockout_speaks_spanish_by_default(app: Guard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATCODE_LANG")
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    async with Browser(app, ATTACKER) as browser:
        await fail(browser, 5)
        refused = await browser.login(TOKEN)
    assert refused.status_code == 429 and "Espera 60 s" in refused.text and "PATCODE_SERVER_TOKEN" in refused.text


async def test_the_app_tracks_no_more_addresses_than_its_cap(app: Guard, clock: FakeClock) -> None:
    app.gateway.login_limit = LoginLimit(max_clients=8, clock=clock)
    async with Browser(app, ATTACKER) as browser:
        for number in range(20):
            other = Browser(app, f"192.0.2.{number}")
            other.http.cookies = browser.http.cookies  # the CSRF token is bound to the cookie, not the address
            other.csrf = browser.csrf
            assert (await other.login(WRONG)).status_code == 303
            await other.http.aclose()
    assert len(app.gateway.login_limit) == 8


def test_the_limit_forgets_the_least_recently_seen_address_beyond_its_cap(clock: FakeClock) -> None:
    limit = LoginLimit(max_clients=3, clock=clock)
    for _ in range(5):
        limit.failed("a")
    assert limit.retry_after("a") == 60
    limit.failed("b")
    assert limit.retry_after("a") == 60  # a locked address that keeps knocking is the most recently seen
    limit.failed("c")
    limit.failed("d")
    assert len(limit) == 3 and limit.retry_after("a") == 60  # "b" went, not "a"
    limit.failed("e")
    limit.failed("f")
    limit.failed("g")
    assert len(limit) == 3 and limit.retry_after("a") == 0


def test_the_default_cap_bounds_memory(clock: FakeClock) -> None:
    limit = LoginLimit(clock=clock)
    for number in range(MAX_CLIENTS + 500):
        limit.failed(f"10.0.{number // 256}.{number % 256}")
    assert len(limit) == MAX_CLIENTS == 1024


def test_a_lockout_starts_at_the_fifth_failure_within_the_window(clock: FakeClock) -> None:
    limit = LoginLimit(clock=clock)
    assert [limit.failed("a") for _ in range(4)] == [0, 0, 0, 0] and limit.retry_after("a") == 0
    assert limit.failed("a") == 60 and limit.retry_after("a") == 60
    clock.now += 60
    assert limit.retry_after("a") == 0
    assert limit.failed("a") == 0  # a fresh count after the lockout
    limit.succeeded("a")
    assert len(limit) == 0
