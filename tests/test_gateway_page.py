"""The gateway's web page at / in a real headless Chromium: `patcode serve` as a process, providers on loopback.

Selectors are the page's interface (table#providers, form#fallback-order, ol#order-current, #test-result, the SVG
charts, form#login, ...); the page needs no JavaScript: forms, redirects and a CSRF token in every changing form.
Skipped only when Chromium is missing (scripts/install-test-servers installs it); under CI that is a failure.
"""

# ruff: noqa: F811 - the fixtures imported below are pytest fixtures, named again by the tests' arguments

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from typing import Any

import pytest
from fakes.server_process import FakeProviderServer
from gateway_browser import browser, chromium_path, new_page  # noqa: F401
from gateway_process import GatewayProcess, gateway, gateway_factory, loopback_provider_env  # noqa: F401
from playwright.sync_api import Page, expect

if chromium_path() is None and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (/usr/bin/chromium): run scripts/install-test-servers", allow_module_level=True)

DOTENV = "# PatCode settings of this project\nOPENAI_MODEL=gpt-4o-mini\nLLM_FALLBACK_ORDER=openai,groq\n"
STARTS_OK = re.compile(r"^\s*✅")
STARTS_FAILED = re.compile(r"^\s*❌")


def open_page(
    new_page: Callable[..., Page], gateway: GatewayProcess, path: str = "/", statuses: tuple[int, ...] = (200,), **options: Any
) -> Page:
    page = new_page(**options)
    response = page.goto(gateway.url + path)
    assert response is not None and response.status in statuses, (response and response.status, gateway.output())
    return page


def submit(form: Any, statuses: tuple[int, ...] = (200,), redirect: bool = True) -> None:
    """Clicks the form's submit button and waits for the page it leads to, whose status must be one of ``statuses``;
    with ``redirect``, that page must come from a POST answered 303 (the contract's post/redirect/get)."""
    with form.page.expect_navigation() as navigation:
        form.locator("button, input[type=submit]").first.click()
    response = navigation.value
    assert response is not None and response.status in statuses, (response and response.status, form.page.content()[:2000])
    if redirect:
        posted = response.request.redirected_from
        assert posted is not None and posted.method == "POST", response.url
        answer = posted.response()
        assert answer is not None and answer.status == 303, answer and answer.status


def order_items(page: Page) -> list[str]:
    return [" ".join(text.split()) for text in page.locator("ol#order-current > li").all_inner_texts()]


def chat(gateway: GatewayProcess, client: Any, text: str, model: str = "openai") -> None:
    reply = client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]})
    assert reply.status_code == 200, f"{reply.status_code} {reply.text}\n{gateway.output()}"


def test_page_shows_each_provider_with_its_status(gateway: GatewayProcess, new_page: Callable[..., Page]) -> None:
    page = open_page(new_page, gateway)
    expect(page.locator("form#login")).to_have_count(0)  # no token set: no login
    expect(page.locator("table#providers tr[data-provider]")).to_have_count(2)

    openai = page.locator("table#providers tr[data-provider='openai']")
    expect(openai.locator("td.status")).to_have_text(STARTS_OK)
    expect(openai.locator("td.model")).to_contain_text("gpt-4o-mini")
    groq = page.locator("table#providers tr[data-provider='groq']")
    expect(groq.locator("td.status")).to_have_text(STARTS_FAILED)
    expect(groq.locator("td.reason")).to_contain_text("GROQ_API_KEY no está configurada")

    for name, row in (("openai", openai), ("groq", groq)):
        for cell in ("td.status", "td.reason", "td.model", "td.circuit", "td.limits"):
            expect(row.locator(cell)).to_have_count(1)
        form = row.locator("form.test-provider")
        expect(form).to_have_attribute("method", re.compile("post", re.I))
        expect(form).to_have_attribute("action", re.compile(r"/ui/test$"))
        expect(form.locator("input[name='provider']")).to_have_value(name)
        expect(form.locator("input[name='csrf']")).to_have_value(re.compile(r"\S"))
        expect(form.locator("button, input[type=submit]")).not_to_have_count(0)


def test_fallback_order_form_changes_the_order_in_force_and_the_dotenv(
    gateway_factory: Callable[..., GatewayProcess], provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    gateway = gateway_factory(env=loopback_provider_env(openai=provider_server.url), dotenv=DOTENV)
    page = open_page(new_page, gateway)
    expect(page.locator("ol#order-current > li")).to_have_text([re.compile(r"\bopenai\b"), re.compile(r"\bgroq\b")])

    form = page.locator("form#fallback-order")
    expect(form).to_have_attribute("action", re.compile(r"/ui/order$"))
    expect(form.locator("input[name='csrf']")).to_have_value(re.compile(r"\S"))
    form.locator("input[name='order']").fill("groq,openai/gpt-4o-mini")
    submit(form)

    assert page.url.split("?")[0].rstrip("/") == gateway.url  # 303 back to /
    expect(page.locator("#flash.ok")).to_be_visible()
    expect(page.locator("#flash.error")).to_have_count(0)
    expect(page.locator("ol#order-current > li")).to_have_text([re.compile(r"\bgroq\b"), re.compile(r"openai/gpt-4o-mini")])
    saved = gateway.dotenv_path.read_text(encoding="utf-8")
    assert gateway.read_dotenv()["LLM_FALLBACK_ORDER"] == "groq,openai/gpt-4o-mini", saved
    assert "# PatCode settings of this project" in saved and "OPENAI_MODEL=gpt-4o-mini" in saved, saved  # the rest kept
    assert saved.count("LLM_FALLBACK_ORDER=") == 1, saved

    page.reload()  # the order in force, not only a message after the POST
    expect(page.locator("ol#order-current > li")).to_have_text([re.compile(r"\bgroq\b"), re.compile(r"openai/gpt-4o-mini")])


def test_a_bad_fallback_order_is_refused_and_changes_nothing(
    gateway: GatewayProcess, new_page: Callable[..., Page]
) -> None:
    page = open_page(new_page, gateway)
    before_items, before_file = order_items(page), gateway.dotenv_path.read_bytes()
    form = page.locator("form#fallback-order")
    form.locator("input[name='order']").fill("no-such-provider,openai")
    submit(form)

    expect(page.locator("#flash.error")).to_be_visible()
    expect(page.locator("#flash.error")).to_contain_text("no-such-provider")
    expect(page.locator("#flash.ok")).to_have_count(0)
    assert order_items(page) == before_items
    assert gateway.dotenv_path.read_bytes() == before_file


def test_testing_a_provider_shows_its_answer(
    gateway: GatewayProcess, provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    provider_server.configure(reply="respuesta del servidor de prueba")
    page = open_page(new_page, gateway)
    submit(page.locator("table#providers tr[data-provider='openai'] form.test-provider"))

    result = page.locator("#test-result")
    expect(result).to_have_count(1)
    expect(result).to_have_attribute("data-provider", "openai")
    expect(result).to_have_attribute("data-ok", "true")
    expect(result).to_contain_text("respuesta del servidor de prueba")
    assert len(provider_server.requests("chat")) == 1


def test_testing_a_failed_provider_shows_why(
    gateway: GatewayProcess, provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    page = open_page(new_page, gateway)
    submit(page.locator("table#providers tr[data-provider='groq'] form.test-provider"))

    result = page.locator("#test-result")
    expect(result).to_have_attribute("data-provider", "groq")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("GROQ_API_KEY")
    assert provider_server.requests("chat") == []  # groq was tested alone: no fallback to openai


def test_charts_and_tables_show_requests_made_through_the_api(
    gateway: GatewayProcess, new_page: Callable[..., Page]
) -> None:
    with gateway.client() as client:
        for number in range(3):
            chat(gateway, client, f"hola {number}")
    page = open_page(new_page, gateway)

    for chart in ("chart-latency", "chart-requests", "chart-cost"):
        expect(page.locator(f"svg#{chart}")).to_have_class(re.compile(r"\bchart\b"))
    requests = page.locator("svg#chart-requests .mark")
    assert requests.count() > 0
    values = [float(mark.get_attribute("data-value") or "nan") for mark in requests.all()]
    assert sum(values) == 3, values
    latency = page.locator("svg#chart-latency .mark")
    assert latency.count() > 0
    assert all(float(mark.get_attribute("data-value") or "nan") >= 0 for mark in latency.all())
    expect(page.locator("svg#chart-requests .chart-empty, figure:has(svg#chart-requests) .chart-empty")).to_have_count(0)

    expect(page.locator("table#usage tr[data-provider='openai'][data-model='gpt-4o-mini']")).to_have_count(1)
    expect(page.locator("table#usage tr[data-provider='openai']")).to_contain_text("3")
    assert page.locator("table#recent tr:has(td)").count() >= 3


def test_period_form_filters_the_statistics(gateway: GatewayProcess, new_page: Callable[..., Page]) -> None:
    with gateway.client() as client:
        chat(gateway, client, "hola")
    page = open_page(new_page, gateway)
    form = page.locator("form#period")
    expect(form).to_have_attribute("method", re.compile("get", re.I))
    options = form.locator("select[name='since'] option")
    assert [option.get_attribute("value") for option in options.all()] == ["1h", "24h", "7d", "30d", "all"]

    form.locator("select[name='since']").select_option("1h")
    submit(form, redirect=False)
    assert "since=1h" in page.url
    expect(form.locator("select[name='since']")).to_have_value("1h")
    assert page.locator("svg#chart-requests .mark").count() > 0  # the request of a moment ago is within the hour


def test_charts_without_data_say_so(gateway: GatewayProcess, new_page: Callable[..., Page]) -> None:
    page = open_page(new_page, gateway)
    expect(page.locator(".chart .mark, svg.chart .mark")).to_have_count(0)
    for chart in ("chart-latency", "chart-requests", "chart-cost"):
        figure = page.locator(f"figure:has(#{chart})")
        expect(figure).to_have_count(1)
        expect(figure.locator(".chart-empty")).to_have_count(1)


def test_cache_can_be_cleared_from_the_page(gateway: GatewayProcess, new_page: Callable[..., Page]) -> None:
    page = open_page(new_page, gateway)
    form = page.locator("#cache form#cache-clear")
    expect(form).to_have_attribute("action", re.compile(r"/ui/cache/clear$"))
    expect(form.locator("input[name='csrf']")).to_have_value(re.compile(r"\S"))
    submit(form)
    assert page.url.split("?")[0].rstrip("/") == gateway.url
    expect(page.locator("#flash.error")).to_have_count(0)


def test_browser_language_english_shows_english(
    gateway_factory: Callable[..., GatewayProcess], provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    gateway = gateway_factory(env=loopback_provider_env(openai=provider_server.url), dotenv=DOTENV, lang=None)
    english = open_page(new_page, gateway, locale="en-US")
    expect(english.locator("tr[data-provider='groq'] td.reason")).to_contain_text("GROQ_API_KEY is not set")
    spanish = open_page(new_page, gateway, locale="es-ES")
    expect(spanish.locator("tr[data-provider='groq'] td.reason")).to_contain_text("GROQ_API_KEY no está configurada")
    assert english.locator("body").inner_text() != spanish.locator("body").inner_text()


def test_patcode_lang_english_shows_english(
    gateway_factory: Callable[..., GatewayProcess], provider_server: FakeProviderServer
) -> None:
    gateway = gateway_factory(env=loopback_provider_env(openai=provider_server.url), dotenv=DOTENV, lang="en")
    with gateway.client() as client:  # httpx sends no Accept-Language
        page = client.get("/")
    assert page.status_code == 200
    assert "GROQ_API_KEY is not set" in page.text
    assert "no está configurada" not in page.text


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(
    gateway: GatewayProcess, provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    page = open_page(new_page, gateway)
    before_items, before_file = order_items(page), gateway.dotenv_path.read_bytes()
    posts = [("/ui/order", {"order": "groq"}), ("/ui/test", {"provider": "openai"}), ("/ui/cache/clear", {})]
    for path, fields in posts:
        # The browser's own session (its cookies) without the token, then with a wrong one.
        missing = page.request.post(gateway.url + path, form=fields, max_redirects=0)
        assert missing.status == 403, (path, missing.status)
        wrong = page.request.post(gateway.url + path, form={**fields, "csrf": "not-the-token"}, max_redirects=0)
        assert wrong.status == 403, (path, wrong.status)
        with gateway.client() as client:  # no session at all
            assert client.post(path, data=fields).status_code == 403, path

    page.reload()
    assert order_items(page) == before_items
    assert gateway.dotenv_path.read_bytes() == before_file
    assert provider_server.requests("chat") == []

    # The same POST with the page's token goes through: the 403s were the token's doing.
    token = page.locator("form#fallback-order input[name='csrf']").input_value()
    accepted = page.request.post(gateway.url + "/ui/order", form={"order": "groq,openai", "csrf": token}, max_redirects=0)
    assert accepted.status == 303, accepted.status
    assert gateway.read_dotenv()["LLM_FALLBACK_ORDER"] == "groq,openai"


def test_with_a_server_token_the_page_asks_for_it_first(
    gateway_factory: Callable[..., GatewayProcess], provider_server: FakeProviderServer, new_page: Callable[..., Page]
) -> None:
    token = "patcode-page-test-token-0123456789"
    env = loopback_provider_env(openai=provider_server.url, PATCODE_SERVER_TOKEN=token)
    gateway = gateway_factory(env=env, dotenv=DOTENV)
    page = open_page(new_page, gateway, statuses=(200, 401))  # the contract names no status for the login page
    login = page.locator("form#login")
    expect(login).to_be_visible()
    expect(login).to_have_attribute("action", re.compile(r"/ui/login$"))
    expect(page.locator("table#providers")).to_have_count(0)

    login.locator("input[name='token']").fill("not-the-token")
    submit(login, statuses=(200, 401))
    expect(page.locator("form#login")).to_be_visible()
    expect(page.locator("table#providers")).to_have_count(0)
    assert token not in page.content()
    page.goto(gateway.url + "/")
    expect(page.locator("form#login")).to_be_visible()
    expect(page.locator("table#providers")).to_have_count(0)

    page.locator("form#login input[name='token']").fill(token)
    submit(page.locator("form#login"))
    assert page.url.split("?")[0].rstrip("/") == gateway.url
    expect(page.locator("form#login")).to_have_count(0)
    expect(page.locator("table#providers tr[data-provider='openai'] td.status")).to_have_text(STARTS_OK)
    page.reload()  # the session lasts
    expect(page.locator("table#providers")).to_have_count(1)

    stranger = open_page(new_page, gateway, statuses=(200, 401))  # another browser, no cookie: the login again
    expect(stranger.locator("form#login")).to_be_visible()
    with gateway.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        client.post("/ui/login", data={"token": "not-the-token"})  # whatever cookie a refusal sets grants nothing
        after = client.get("/")
        assert re.search(r"id=[\"']?login", after.text) and not re.search(r"id=[\"']?providers", after.text), after.text


@pytest.mark.parametrize(("signal_number", "codes"), [(signal.SIGTERM, (0, -signal.SIGTERM, 128 + signal.SIGTERM)),
                                                       (signal.SIGINT, (0, -signal.SIGINT, 128 + signal.SIGINT))])
def test_serve_stops_cleanly_on_a_signal(
    gateway: GatewayProcess, signal_number: signal.Signals, codes: tuple[int, ...]
) -> None:
    with gateway.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
    assert gateway.process is not None
    gateway.process.send_signal(signal_number)
    code = gateway.process.wait(timeout=10)
    assert code in codes and "Traceback" not in gateway.output(), (code, gateway.output())
