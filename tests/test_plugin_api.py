"""The plugin author's door, ``patcode_core.plugin``, and the rules it promises (issue 12, part 1)."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import host_with

import patcode_core.plugin as api
from patcode_core.accounting.prices import PriceBook
from patcode_core.manager import LLMManager
from patcode_core.plugins import PluginHost
from patcode_core.routing.ratelimit import QuotaTracker


class Settings(api.ProviderSettings):
    model_config = api.ProviderSettings.model_config | {"env_prefix": "MINI_"}
    model: str = "mini-1"


class Minimal:
    """Two hooks, no base URL, no status check: the smallest plugin that works."""

    def __init__(self, name: str = "mini", joins: bool = True) -> None:
        self.name, self.joins, self.requests = name, joins, []

    @api.hookimpl
    def provider_info(self) -> api.ProviderInfo:
        settings = type(f"{self.name}Settings", (Settings,), {"model_config": Settings.model_config | {"env_prefix": f"{self.name.upper()}_"}})
        return api.ProviderInfo(name=self.name, settings_class=settings, joins_default_order=self.joins)

    @api.hookimpl
    async def provider_complete(self, provider: str, request: api.CompletionRequest, context: api.ProviderContext) -> api.ProviderReply:
        self.requests.append(request)
        return api.ProviderReply(text=f"{self.name}: {request.messages[-1].content}", finish_reason=api.FINISH_STOP)



class Streaming(Minimal):
    """A plugin whose stream sends its counts in pieces."""

    @api.hookimpl
    async def provider_stream(self, provider: str, request: api.CompletionRequest, context: api.ProviderContext) -> AsyncIterator[api.StreamChunk]:
        yield api.StreamChunk(usage=api.Usage(input_tokens=11), model="mini-1-2026")  # before any text, as Anthropic does
        yield api.StreamChunk(text="ho")
        yield api.StreamChunk(text="la", usage=api.Usage(output_tokens=2))
        yield api.StreamChunk(finish_reason=api.FINISH_STOP, usage=api.Usage(output_tokens=3), done=True)


def test_every_name_in_the_door_imports_and_the_version_is_the_packages() -> None:
    assert all(hasattr(api, name) for name in api.__all__)
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert api.__version__ == project["version"]
    assert api.ProviderInfo(name="acme", settings_class=Settings).display_name == "Acme"


async def test_a_minimal_plugin_with_two_hooks_and_no_base_url_works() -> None:
    mini = Minimal()
    async with LLMManager(host=host_with(mini), env_file=None) as manager:
        [status] = await manager.providers_status()
        result = await manager.complete("hola")
    assert status.available and status.reason == "sin comprobación de estado (el plugin no tiene provider_available)"
    assert result.text == "mini: hola" and result.provider == "mini"


async def test_a_plugin_that_opts_out_of_the_default_order_answers_only_when_named() -> None:
    real, echo = Minimal("real"), Minimal("echo", joins=False)
    async with LLMManager(host=host_with(real, echo), env_file=None) as manager:
        assert [entry.provider for entry in manager._route(None, None, True)] == ["real"]
        named = await manager.complete("hola", provider="echo")
    assert named.text == "echo: hola" and real.requests == []


async def test_the_model_named_in_the_fallback_order_is_used_on_the_first_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_FALLBACK_ORDER", "mini/mini-large")
    mini = Minimal()
    async with LLMManager(host=host_with(mini), env_file=None) as manager:
        await manager.complete("hola")
    assert [request.model for request in mini.requests] == ["mini-large"]


async def test_stream_counts_are_merged_and_those_sent_before_the_text_are_kept() -> None:
    mini = Streaming()
    async with LLMManager(host=host_with(mini), env_file=None) as manager:
        events = [event async for event in manager.stream("hola")]
    result = events[-1]
    assert result.text == "hola" and (result.usage.input_tokens, result.usage.output_tokens) == (11, 3)
    assert result.model == "mini-1-2026"


def test_prices_match_patterns_most_specific_first() -> None:
    book = PriceBook(
        {"acme": {"big-*": api.Price(1, 2, "2026-11-01"), "big-fast*": api.Price(3, 4, "2026-11-01"),
                  "big-fast-2026": api.Price(5, 6, "2026-11-01"), api.ANY_MODEL: api.Price(7, 8, "2026-11-01")}},
        {("acme", "big-beta*"): api.Price(0, 0, "LLM_PRICES")},
    )
    assert book.price("acme", "big-20260101").input_per_million == 1
    assert book.price("acme", "big-fast-20260101").input_per_million == 3
    assert book.price("acme", "big-fast-2026").input_per_million == 5
    assert book.price("acme", "small").input_per_million == 7
    assert book.price("acme", "big-beta-1").input_per_million == 0


def test_a_providers_own_rate_limit_headers_with_timestamp_resets() -> None:
    now = [1000.0]
    names = api.RateLimitHeaders(
        requests_remaining="acme-ratelimit-requests-remaining", tokens_remaining="acme-ratelimit-tokens-remaining",
        requests_reset="acme-ratelimit-requests-reset", tokens_reset="acme-ratelimit-tokens-reset", reset_format="timestamp",
    )
    quota = QuotaTracker(clock=lambda: now[0], headers=names)
    in_30s = __import__("datetime").datetime.fromtimestamp(__import__("time").time() + 30, tz=__import__("datetime").timezone.utc)
    quota.observe("m", 200, {"acme-ratelimit-requests-remaining": "0", "acme-ratelimit-requests-reset": in_30s.isoformat().replace("+00:00", "Z")})
    assert 28 < quota.wait("m") <= 30


def test_a_misspelled_hook_argument_is_reported_whole() -> None:
    class Typo:
        @api.hookimpl
        def provider_info(self) -> api.ProviderInfo:
            return api.ProviderInfo(name="typo", settings_class=Settings)

        @api.hookimpl
        async def provider_complete(self, provider, reqest, context):  # type: ignore[no-untyped-def]
            raise AssertionError

    host = PluginHost()
    host.register(Typo(), name="typo")
    assert "reqest" in host.broken["typo"].error and "hookspec" in host.broken["typo"].error


def _doc_examples() -> list[str]:
    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


async def test_the_plugin_guide_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of docs/plugins.md runs; the minimal plugin answers through a manager."""
    import types

    import httpx
    import respx

    blocks = _doc_examples()
    assert len(blocks) >= 4
    minimal = types.ModuleType("patcode_acme_doc")
    exec(compile(blocks[0], "docs/plugins.md[minimal]", "exec"), minimal.__dict__)  # noqa: S102
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks[1:], 1):
        exec(compile(block, f"docs/plugins.md[{index}]", "exec"), namespace)  # noqa: S102
    assert isinstance(namespace["ACME_LIMITS"], api.RateLimitHeaders)

    monkeypatch.setenv("ACME_API_KEY", "acme-test-key-0123456789")
    host = PluginHost()
    host.register(minimal, name="acme")
    with respx.mock:
        respx.post("https://api.acme.test/v1/complete").mock(
            return_value=httpx.Response(200, json={"text": "hola", "model": "acme-large-2026", "input_tokens": 3, "output_tokens": 1})
        )
        async with LLMManager(host=host, env_file=None) as manager:
            result = await manager.complete("hola")
    assert (result.text, result.finish_reason, result.cost) == ("hola", "stop", pytest.approx((3 * 0.15 + 0.60) / 1e6))
