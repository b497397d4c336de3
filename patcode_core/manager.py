"""The LLMManager: sends a request to the current provider and falls back when it fails."""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from patcode_core.accounting.prices import PriceBook, parse_price_overrides
from patcode_core.accounting.store_target import is_postgres_url
from patcode_core.accounting.usage import DATABASE_NAME, UsageLog, cache_scope
from patcode_core.config import DEFAULT_ENV_FILE, FallbackEntry, Settings, load_settings
from patcode_core.context import ProviderContext, Timeouts
from patcode_core.errors import ConfigError, ErrorKind, PatCodeError, ProviderError, UsageError
from patcode_core.i18n import t
from patcode_core.log import get_logger
from patcode_core.paths import data_dir
from patcode_core.plugin_guard import guarded, run_in_thread
from patcode_core.plugins import PluginHost
from patcode_core.redact import redact
from patcode_core.routing.balancing import Balancer, Candidate, parse_weights
from patcode_core.routing.breaker import BreakerBoard, CircuitBreaker, CircuitState, CircuitStatus
from patcode_core.routing.circuit_probes import CircuitProber
from patcode_core.routing.learned_limits import NO_HISTORY, WINDOW, LearnedLimits, StreamLimits, Timing
from patcode_core.routing.ratelimit import QuotaSnapshot
from patcode_core.routing.router import Router

if TYPE_CHECKING:
    from patcode_core.accounting.history import ProviderUsage
    from patcode_core.routing.streaming import StreamRunner
from patcode_core.accounting.stats import ProviderStats, StatsRecorder
from patcode_core.types import Availability, CompletionRequest, CompletionResult, Message, StreamEvent, Usage

#: Status checks never take longer than this, whatever a provider's timeout.
STATUS_TIMEOUT = 10.0
ROLES = ("system", "user", "assistant")
TEST_PROMPT = "Reply with the single word: OK"
#: least-cost routing's estimate of a request: its prompt at about 4 characters a token, and an answer of
#: at most this many tokens (``max_tokens`` when smaller).
CHARS_PER_TOKEN = 4
EXPECTED_OUTPUT_TOKENS = 500
#: least-busy with shared state: how stale the other instances' counts may be, and how often ours are published.
BUSY_EVERY = 0.05


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """One row of ``/llm providers``."""

    name: str
    available: bool
    model: str
    current: bool
    reason: str = ""
    suggestion: str = ""
    kind: ErrorKind | None = None
    broken: bool = False
    circuits: tuple[CircuitStatus, ...] = ()
    quota: QuotaSnapshot | None = None


MessagesInput = str | Sequence[Message | Mapping[str, str]]

#: Hears each routing event of a call: the event's name and its fields (see :meth:`LLMManager.watch`).
Watcher = Callable[[str, Mapping[str, Any]], None]


class _RouteEvents:
    """The logger the router and the stream runner write to; it also tells each watcher what happened.

    Every event (``fallback_trying``, ``provider_skipped``, ``provider_failed``,
    ``retrying``, ``rate_limit_wait``, ``stream_restarted``,
    ``fallback_succeeded``, ``max_tokens_ignored``...) reaches the watchers with
    its fields whatever ``PATCODE_LOG_LEVEL`` says, then goes to the log.
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        self._watchers.append(watcher)

        def stop() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return stop

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        for watcher in list(self._watchers):
            try:
                watcher(event, fields)
            except Exception as exc:  # a watcher's bug never breaks a call; it is logged
                self._log.debug("watcher_failed", error=repr(exc))
        getattr(self._log, level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


HTTP_CLIENTS = ("httpx", "aiohttp")


def _http_client(chosen: str | None) -> str:
    """The HTTP client asked for (``PATCODE_HTTP_CLIENT`` by default), checked: a clear error when unusable."""
    import os

    name = (chosen or os.environ.get("PATCODE_HTTP_CLIENT", "") or "httpx").strip().lower()
    if name not in HTTP_CLIENTS:
        raise ConfigError(t("config.bad_http_client", value=name[:40], choices=", ".join(HTTP_CLIENTS)))
    if name == "aiohttp":
        import importlib.util

        if importlib.util.find_spec("aiohttp") is None:
            raise ConfigError(t("config.no_aiohttp"), install_hint())
    return name


def install_hint() -> str:
    """How a provider is added to this PatCode: the plugin packages installed, and pip for this very Python."""
    import shlex
    import sys
    from importlib.metadata import entry_points

    from patcode_core.hookspecs import ENTRY_POINT_GROUP

    installed = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        package = entry.dist.name if entry.dist is not None else "?"
        installed.append(f"{entry.name} ({package})")
    return t(
        "suggest.install_plugin",
        group=ENTRY_POINT_GROUP,
        python=shlex.quote(sys.executable),
        installed=", ".join(installed) or "-",
    )


def _encodable(text: str) -> bool:
    """True when ``text`` can be sent as UTF-8 (no lone surrogates: bytes that were not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_messages(prompt: MessagesInput) -> tuple[Message, ...]:
    """A prompt string or a message list as validated :class:`Message` values.

    :raises UsageError: for an empty prompt, a bad role, or text that is not
        valid UTF-8 (a prompt typed in another encoding reaches Python as lone surrogates).
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise UsageError(t("error.empty_prompt"))
        messages = [Message("user", prompt)]
    else:
        messages = []
        for item in prompt:
            role, content = (item.role, item.content) if isinstance(item, Message) else (item.get("role"), item.get("content"))
            if role not in ROLES or not isinstance(content, str):
                raise UsageError(t("error.bad_message", role=role, roles=", ".join(ROLES)))
            messages.append(Message(role, content))
        if not messages:
            raise UsageError(t("error.empty_prompt"))
    for message in messages:
        if not _encodable(message.content):
            raise UsageError(t("error.prompt_not_utf8"), t("suggest.prompt_not_utf8"))
    return tuple(messages)


class LLMManager:
    """Routes completions to providers with automatic fallback; async first.

    :param settings: loaded settings (default: environment and ``.env``).
    :param host: the plugin host (default: every installed plugin).
    :param env_file: the ``.env`` to read when ``settings`` is not given.
    :param http_client: ``httpx`` or ``aiohttp`` under the providers' httpx clients
        (default: ``PATCODE_HTTP_CLIENT``, else ``httpx``; see :mod:`patcode_core.wire.aiohttp_transport`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        host: PluginHost | None = None,
        *,
        env_file: str | Path | None = DEFAULT_ENV_FILE,
        http_client: str | None = None,
    ) -> None:
        self._events = _RouteEvents(get_logger())
        self._log: Any = self._events
        self._host = host if host is not None else PluginHost.discover()
        self.settings = settings if settings is not None else load_settings(self._host, env_file)
        self._host.report_broken()  # after the settings: their secrets are now redacted from plugin errors
        llm = self.settings.llm
        timeouts = Timeouts(connect=llm.connect_timeout, first_byte=llm.first_byte_timeout)
        client = _http_client(http_client)
        self._contexts = {
            name: ProviderContext(info, llm.provider(name), timeouts, max_response_bytes=llm.max_response_bytes,
                                  http_client=client)
            for name, info in self._host.providers.items()
            if name in llm.providers
        }
        #: Providers whose settings could not be loaded: out of service, each with its reason.
        self._misconfigured = {name: problem for name, problem in llm.problems.items() if name in self._host.providers}
        self._secrets = llm.secret_values()
        self._stats = StatsRecorder()
        self._async_hooks: dict[tuple[str, str], bool] = {}
        self._installed: list[str] | None = None
        self._default_temperature: float = llm.temperature
        self._default_max_tokens: int = llm.max_tokens
        self._routes: dict[tuple[str, str | None, bool], list[FallbackEntry]] = {}
        self._limit_warned: set[tuple[str, str]] = set()
        self._learned_limits: LearnedLimits | None = None
        self.usage = self._usage_log(llm)
        #: ``LLM_ROUTING``: which healthy route a call with no provider named tries first.
        self.balancer = Balancer(llm.routing, parse_weights(llm.weights))
        if self.balancer.strategy == "least-latency":  # the only strategy that weighs latencies
            self.usage.observers.append(self._observe_latency)
        #: Checks open circuits in the background; stopped by :meth:`aclose`.
        self.prober = CircuitProber(self.availability, self._log)
        self.breakers = BreakerBoard(
            lambda: CircuitBreaker(llm.breaker_threshold, llm.breaker_cooldown, llm.breaker_max_cooldown),
            on_open=self.prober.watch,
        )
        self._router = Router(
            self._contexts,
            llm,
            self.breakers,
            self._stats,
            self._call,
            self._scrub,
            self._missing_error,
            self._host.plugin_of,
            self._log,
            self.usage,
        )
        self._stream_runner: StreamRunner | None = None
        #: ``LLM_STATE_URL``: what several instances share through Redis (``None``: this process keeps its own).
        self.shared = self._shared_state(llm)
        self._router.shared = self.prober.shared = self.shared
        self._busy_read: tuple[float, Mapping[str, int]] = (-math.inf, {})
        if self.shared is not None:  # a 429 or an x-ratelimit-* header at zero blocks the provider everywhere
            for name, context in self._contexts.items():
                context.quota.on_block = self._blocked_everywhere(name)
                if self.balancer.strategy == "least-busy":
                    context.slots.on_change = self._publish_busy(name)
        self.auto_fallback: bool = llm.auto_fallback
        configured_order = llm.fallback_entries
        self._fallback = (
            self._known_entries(configured_order)
            if configured_order
            else [FallbackEntry(name) for name in self.installed if self._joins_default_order(name)]
        )
        self._current = self._initial_provider(llm.default_provider)
        for name, context in self._contexts.items():
            for warning in context.settings.config_warnings():
                self._log.warning("config_warning", provider=name, message=warning)

    @staticmethod
    def _shared_state(llm: Any) -> Any:
        """The Redis-backed state when ``LLM_STATE_URL`` names one; a missing client library is a clear error."""
        if not llm.state_url:
            return None
        import importlib.util

        if importlib.util.find_spec("redis") is None:
            raise ConfigError(t("config.no_redis"), install_hint())
        from patcode_core.state.shared import SharedState

        return SharedState(llm.state_url, llm.state_prefix, timeout=llm.state_timeout)

    def _usage_log(self, llm: Any) -> UsageLog:
        """History, prices and cache as configured (``LLM_STATS_STORE``, ``LLM_PRICES``, ``LLM_CACHE``)."""
        published = {name: context.info.prices for name, context in self._contexts.items()}
        cache_for = frozenset(name for name, context in self._contexts.items() if llm.cache and context.settings.cache)
        # An answer is cached per endpoint and account: a digest of the base URL and of the key, never the key.
        scopes = {
            name: cache_scope(self._contexts[name].settings.base_url, self._contexts[name].settings.api_key_value())
            for name in cache_for
        }
        # on: SQLite in the data directory (found at first use); off: memory; a postgresql:// URL: that server.
        target: Path | str | Callable[[], Path] | None = lambda: data_dir() / DATABASE_NAME
        history_off = "history_off"
        if llm.stats_store == "off":
            target = None
        elif is_postgres_url(llm.stats_store):
            target, history_off = llm.stats_store, "history_off_server"
        return UsageLog(
            target,
            PriceBook(published, parse_price_overrides(llm.prices)),
            cache_for=cache_for,
            scopes=scopes,
            cache_ttl=llm.cache_ttl,
            log_content=llm.log_content,
            on_unavailable=lambda reason: self._log.warning(history_off, reason=self._scrub_text(reason)),
        )

    # -- configuration -------------------------------------------------

    @property
    def host(self) -> PluginHost:
        """The plugin host: what is installed, loaded or broken (``patcode plugins``)."""
        return self._host

    @property
    def installed(self) -> list[str]:
        """Every provider name PatCode knows, loaded or broken, by priority."""
        if self._installed is None:
            loaded = sorted(self._contexts, key=lambda n: (self._contexts[n].info.priority, n))
            out_of_service = set(self._host.broken) | set(self._misconfigured)
            self._installed = loaded + sorted(name for name in out_of_service if name not in self._contexts)
        return list(self._installed)

    def _joins_default_order(self, name: str) -> bool:
        """Whether ``name`` is tried when no ``LLM_FALLBACK_ORDER`` is set (a test or echo plugin opts out)."""
        context = self._contexts.get(name)
        return context is None or context.info.joins_default_order

    def _known_entries(self, entries: Iterable[FallbackEntry]) -> list[FallbackEntry]:
        known = []
        for entry in entries:
            if entry.provider in self.installed:
                known.append(entry)
            else:
                self._log.warning(
                    "fallback_unknown_provider", provider=entry.provider, installed=", ".join(self.installed) or "-"
                )
        return known

    def _initial_provider(self, configured: str | None) -> str | None:
        if configured:
            if configured not in self.installed:
                raise ConfigError(
                    t(
                        "config.unknown_provider",
                        var="LLM_DEFAULT_PROVIDER",
                        value=configured,
                        installed=", ".join(self.installed) or "-",
                    ),
                    install_hint(),
                )
            return configured
        return self._fallback[0].provider if self._fallback else None

    def get_current_provider(self) -> str | None:
        """The provider a request goes to first."""
        return self._current

    def first_configured(self) -> str | None:
        """The provider a request will really go to first: the first of the current route that is loaded and has its key.

        Checked without network (a provider that is down still counts); ``None`` when none is configured.
        """
        try:
            route = self._route(None, None, self.auto_fallback)
        except PatCodeError:
            return None
        return next((entry.provider for entry in route if self.is_configured(entry.provider)), None)

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher(event, fields)`` at each routing event of this manager's calls; returns a function that stops it.

        ``fallback_trying`` (``provider``) says which provider is tried next,
        ``provider_skipped`` and ``provider_failed`` why one was left,
        ``stream_restarted`` (``to_provider``) where a broken stream goes on.
        A watcher runs on the event loop: it must be quick and must not block.
        """
        return self._events.watch(watcher)

    def switch(self, name: str) -> str:
        """Make ``name`` the current provider; unknown or broken names raise a clear error."""
        name = name.strip().lower()
        if name not in self._contexts:
            raise self._missing_error(name) if name in self.installed else self._unknown_error(name)
        self._current = name
        return name

    @property
    def fallback_order(self) -> list[FallbackEntry]:
        """The order a request walks when its provider fails (``LLM_FALLBACK_ORDER``, or every provider by priority)."""
        return list(self._fallback)

    def set_fallback_order(self, entries: Sequence[FallbackEntry]) -> list[FallbackEntry]:
        """Walk ``entries`` from now on, the first one tried first; an unknown provider raises a clear error.

        Repeats are dropped. Nothing is written: persisting is the caller's choice (``patcode serve``'s page).
        """
        unique: list[FallbackEntry] = []
        for entry in entries:
            if entry.provider not in self.installed:
                raise self._unknown_error(entry.provider)
            if entry not in unique:
                unique.append(entry)
        if not unique:
            raise UsageError(t("error.empty_order"))
        self._fallback = unique
        self._current = unique[0].provider
        self._routes.clear()
        return self.fallback_order

    def scrub(self, text: str) -> str:
        """``text`` without any configured secret (keys, URL passwords): for text from providers and plugins."""
        return self._scrub_text(text)

    def model_of(self, name: str) -> str:
        """The model a provider uses when the route names none."""
        return self._contexts[name].settings.model

    def is_configured(self, name: str) -> bool:
        """False when the provider needs a key that is not set (checked without network)."""
        context = self._contexts.get(name)
        return context is not None and context.configured

    def _unknown_error(self, name: str) -> PatCodeError:
        return PatCodeError(
            t("error.unknown_provider", provider=name, installed=", ".join(self.installed) or "-"),
            install_hint(),
        )

    def _missing_error(self, name: str) -> ProviderError:
        """Why an installed provider cannot serve: its plugin is broken or its settings are bad."""
        if name in self._misconfigured:
            return ProviderError(
                name, ErrorKind.NOT_CONFIGURED, self._scrub_text(self._misconfigured[name]), t("config.fix_hint")
            )
        if name in self._host.broken:
            return self._broken_error(name)
        return ProviderError(name, ErrorKind.PLUGIN_ERROR, str(self._unknown_error(name)))

    def _broken_error(self, name: str) -> ProviderError:
        broken = self._host.broken[name]
        return ProviderError(
            name,
            ErrorKind.PLUGIN_ERROR,
            t("error.plugin_broken", plugin=name, error=self._scrub_text(broken.error)),
            t("suggest.plugin_broken", plugin=name),
        )

    # -- completions ---------------------------------------------------

    def _route(self, provider: str | None, model: str | None, fallback: bool) -> list[FallbackEntry]:
        """The providers and models to try, in order, without repeats (remembered per shape)."""
        first = provider.strip().lower() if provider else self._current
        if first is None:
            raise PatCodeError(t("error.no_providers"), install_hint())
        key = (first, model, fallback)
        known = self._routes.get(key)
        if known is not None:
            return known
        if first not in self.installed:
            raise self._unknown_error(first)
        route = [FallbackEntry(first, model)]
        if provider is None and model is None and self._fallback and self._fallback[0].provider == first:
            route = [self._fallback[0]]  # LLM_FALLBACK_ORDER=acme/big-model: the first try is that model too
        if fallback:
            route.extend(self._fallback)
        unique: list[FallbackEntry] = []
        seen: set[tuple[str, str | None]] = set()
        for entry in route:
            resolved = entry.model or (self.model_of(entry.provider) if entry.provider in self._contexts else None)
            if (entry.provider, resolved) not in seen:
                seen.add((entry.provider, resolved))
                unique.append(FallbackEntry(entry.provider, resolved))
        if len(self._routes) < 256:  # models named per call could be unbounded
            self._routes[key] = unique
        return unique

    async def complete(
        self,
        prompt: MessagesInput,
        *,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallback: bool | None = None,
        conversation: str | None = None,
    ) -> CompletionResult:
        """Answer ``prompt`` (a string or a message list), falling back on provider failures.

        With fallback off, the first error is raised as it is; with it on,
        :class:`AllProvidersFailedError` lists every provider's failure.
        """
        # Without shared state there is nothing to ask the other instances: no coroutine to run for it.
        turn, busy = (None, None) if self.shared is None else await self._shared_view(provider, model)
        route, make_request, use_fallback = self._plan(prompt, provider, model, temperature, max_tokens, fallback, conversation,
                                                       turn, busy)
        result = await self._router.run(route, make_request, use_fallback)
        self._check_token_limit(result, self._default_max_tokens if max_tokens is None else max_tokens)
        return result

    async def stream(
        self,
        prompt: MessagesInput,
        *,
        provider: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        fallback: bool | None = None,
        conversation: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Answer ``prompt`` as it is written.

        Yields :class:`~patcode_core.types.StreamStarted` when the first token
        arrives, :class:`~patcode_core.types.TextDelta` pieces, a
        :class:`~patcode_core.types.StreamRestarted` if a broken stream starts
        again on another provider (drop the text shown so far), and last the
        :class:`CompletionResult`. A stream that breaks for good raises
        :class:`~patcode_core.errors.StreamInterruptedError` with the partial text.
        """
        turn, busy = await self._shared_view(provider, model)
        route, make_request, use_fallback = self._plan(prompt, provider, model, temperature, max_tokens, fallback, conversation,
                                                       turn, busy)
        async with aclosing(self._streams().run(route, make_request, use_fallback)) as events:
            async for event in events:
                if isinstance(event, CompletionResult):
                    self._check_token_limit(event, self._default_max_tokens if max_tokens is None else max_tokens)
                yield event

    def _check_token_limit(self, result: CompletionResult, asked: int) -> None:
        """Warn, once per provider and model, when a server returned more tokens than ``max_tokens`` allowed."""
        got = result.usage.output_tokens
        if result.cached or got is None or got <= asked:
            return
        key = (result.provider, result.model)
        if key not in self._limit_warned:
            self._limit_warned.add(key)
            self._log.warning("max_tokens_ignored", provider=result.provider, model=result.model, asked=asked, got=got)

    def _streams(self) -> StreamRunner:
        """The stream runner, built (and its module imported) on the first stream."""
        if self._stream_runner is None:
            from patcode_core.routing.hedging import parse_hedge
            from patcode_core.routing.streaming import StreamRunner

            llm = self.settings.llm
            self._stream_runner = StreamRunner(
                self._router, self._host, self._log, limits=self.learned_limits, recovery=llm.stream_recovery,
                hedge=parse_hedge(llm.hedge),
            )
        return self._stream_runner

    @property
    def learned_limits(self) -> LearnedLimits:
        """Each provider and model's stream time limits, learned from its answers (kept in the usage store)."""
        if self._learned_limits is None:
            llm = self.settings.llm

            def load(provider: str, model: str) -> list[Timing]:
                rows = self.usage.store.timings(provider, model, WINDOW)
                return [Timing(provider, model, *row) for row in rows]

            def save(timing: Timing) -> None:
                self.usage.store.record_timing(timing.provider, timing.model, timing.first_byte, timing.first_token, timing.gap)
                if self.shared is not None:  # every instance learns from this answer
                    self._router.share(self.shared.record_latency(timing.provider, timing.model, timing.first_token))
                    self._router.share(self.shared.record_latency(timing.provider, f"{timing.model}:gap", timing.gap))

            def cold_start(provider: str) -> float:
                context = self._contexts.get(provider)
                return context.info.cold_start if context is not None else 0.0

            self._learned_limits = LearnedLimits(
                load,
                save,
                first_token_ceiling=llm.first_token_timeout,
                idle_ceiling=llm.stream_idle_timeout,
                no_history=(
                    llm.first_token_timeout if llm.is_set("first_token_timeout") else NO_HISTORY,
                    llm.stream_idle_timeout if llm.is_set("stream_idle_timeout") else NO_HISTORY,
                ),
                users_ceiling=llm.is_set("first_token_timeout"),
                cold_start=cold_start,
            )
        return self._learned_limits

    def limits_in_force(self) -> list[tuple[str, str, StreamLimits]]:
        """(provider, model, limits) for each configured provider's model: the stream time limits in force."""
        found = []
        for name in self.installed:
            settings = self.settings.llm.providers.get(name)
            if settings is None or not self.is_configured(name):
                continue
            found.append((name, settings.model, self.learned_limits.limits(name, settings.model, settings.timeout, steady=True)))
        return found

    def _plan(
        self,
        prompt: MessagesInput,
        provider: str | None,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        fallback: bool | None,
        conversation: str | None = None,
        turn: int | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> tuple[list[FallbackEntry], Callable[[str], CompletionRequest], bool]:
        """The route, a request builder per model, and whether to fall back."""
        messages = to_messages(prompt)
        use_fallback = self.auto_fallback if fallback is None else fallback
        route = self._route(provider, model, use_fallback)
        chosen_temperature = self._default_temperature if temperature is None else temperature
        chosen_max_tokens = self._default_max_tokens if max_tokens is None else max_tokens
        if provider is None and model is None and self.balancer.strategy != "fallback":
            route = self.balancer.order(route, lambda entry: self._candidate(entry, messages, chosen_max_tokens, busy), turn)

        def make_request(model_name: str) -> CompletionRequest:
            return CompletionRequest(
                messages=messages,
                model=model_name,
                temperature=chosen_temperature,
                max_tokens=chosen_max_tokens,
                conversation=conversation,
            )

        return route, make_request, use_fallback

    def _blocked_everywhere(self, provider: str) -> Callable[[str, float], None]:
        shared = self.shared

        def tell(model: str, seconds: float) -> None:
            self._router.share(shared.block(provider, model, seconds))

        return tell

    async def _shared_view(self, provider: str | None, model: str | None) -> tuple[int | None, Mapping[str, int] | None]:
        """What a balanced call needs from the other instances: its round-robin turn (one round trip), or the
        requests in flight everywhere for least-busy (one round trip, reused for :data:`BUSY_EVERY` seconds)."""
        if self.shared is None or provider is not None or model is not None:
            return None, None
        if self.balancer.uses_turns:
            return await self.shared.next_turn("routing") - 1, None
        if self.balancer.strategy != "least-busy":
            return None, None
        now = time.monotonic()
        if now - self._busy_read[0] >= BUSY_EVERY:
            self._busy_read = (now, await self.shared.in_flight_counts())
        return None, self._busy_read[1]

    def _publish_busy(self, provider: str) -> Callable[[int], None]:
        """Tell the other instances how many requests ``provider`` has in flight here, at most every :data:`BUSY_EVERY`
        seconds (the latest count: a skipped publication leaves no drift)."""
        pending = False

        async def publish() -> None:
            nonlocal pending
            await asyncio.sleep(BUSY_EVERY)
            pending = False
            await self.shared.set_in_flight(provider, self._contexts[provider].slots.in_flight)

        def changed(count: int) -> None:
            nonlocal pending
            if not pending:
                pending = True
                self._router.share(publish())

        return changed

    def _candidate(
        self, entry: FallbackEntry, messages: Sequence[Message], max_tokens: int, busy: Mapping[str, int] | None = None
    ) -> Candidate | None:
        """A route the balancer may choose, with what it weighs; ``None`` when unhealthy (no key, circuit not
        closed, rate-limited). Checked without network."""
        context = self._contexts.get(entry.provider)
        if context is None or not context.configured:
            return None
        model = entry.model or context.settings.model
        if any(status.model == model and status.state is not CircuitState.CLOSED for status in self.breakers.status(entry.provider)):
            return None
        quota = context.quota.snapshot(model)
        if quota.blocked_for > 0 or context.requests_per_minute.wait() > 0:
            return None
        cost = None
        if self.balancer.strategy == "least-cost":
            prompt_tokens = sum(len(message.content) for message in messages) // CHARS_PER_TOKEN + 1
            cost = self.usage.cost(entry.provider, model, Usage(prompt_tokens, min(max_tokens, EXPECTED_OUTPUT_TOKENS)))
        in_flight = context.slots.in_flight if busy is None else max(busy.get(entry.provider, 0), context.slots.in_flight)
        return Candidate(FallbackEntry(entry.provider, model), cost, in_flight, quota.remaining_requests)

    def _observe_latency(self, row: Any) -> None:
        """Feed each answer's first-token time (or whole latency) to the balancer's moving averages."""
        if row.outcome == "success" and not row.cached:
            seconds = row.ttft if row.ttft is not None else row.latency
            if seconds is not None:
                self.balancer.observe(row.provider, row.model, seconds)

    async def _call(self, name: str, hook: str, **kwargs: Any) -> Any:
        """Run one hook of the plugin owning ``name``; a stuck call can always be abandoned.

        Plain hooks run in a daemon thread of their own; each step of an async
        hook is bounded by the provider's timeout (see :mod:`patcode_core.plugin_guard`).
        """
        caller = self._host.caller(hook, name)
        key = (hook, name)
        is_async = self._async_hooks.get(key)
        if is_async is None:
            impls = caller.get_hookimpls()
            is_async = bool(impls) and all(inspect.iscoroutinefunction(impl.function) for impl in impls)
            self._async_hooks[key] = is_async
        if is_async:
            result = caller(provider=name, **kwargs)
        else:
            result = await run_in_thread(caller, f"{name}.{hook}", provider=name, **kwargs)
        if inspect.isawaitable(result):
            result = await guarded(result, self._host.plugin_of(name), self.step_limit(name))
        return result

    def step_limit(self, name: str) -> float:
        """Longest a plugin of ``name`` may hold the event loop in one step: the provider's timeout."""
        context = self._contexts.get(name)
        return context.settings.timeout if context is not None else STATUS_TIMEOUT

    def _scrub_text(self, text: str) -> str:
        return redact(text, self._secrets)

    def _scrub(self, error: ProviderError) -> ProviderError:
        error.message = self._scrub_text(error.message)
        error.suggestion = self._scrub_text(error.suggestion)
        error.args = (error.message,)
        return error

    # -- status, test, stats -------------------------------------------

    async def availability(self, name: str) -> Availability:
        """Ask one provider whether it can serve now (fast, spends no tokens)."""
        if name not in self._contexts:
            if name not in self.installed:
                raise self._unknown_error(name)
            return Availability.from_error(self._missing_error(name))
        context = self._contexts[name]
        if not context.configured:
            return Availability.from_error(context.not_configured_error())
        if not self._host.caller("provider_available", name).get_hookimpls():
            return Availability(True, t("plugin.no_status_check"))  # a minimal plugin: its key is set, that is all we know
        try:
            answer = await asyncio.wait_for(
                self._call(name, "provider_available", context=context), min(STATUS_TIMEOUT, context.settings.timeout)
            )
        except TimeoutError:
            return Availability.from_error(context.transport_error(httpx.ReadTimeout("status check")))
        except Exception as exc:  # a plugin bug shows as a ❌ row, not a crash
            return Availability.from_error(self._scrub(context.error_from_exception(exc, self._host.plugin_of(name))))
        if not isinstance(answer, Availability):
            return Availability(False, t("plugin.bad_reply", got=type(answer).__name__), "", ErrorKind.PLUGIN_ERROR)
        return answer

    async def providers_status(self) -> list[ProviderStatus]:
        """Every provider with ✅/❌ and the reason, its circuits and quota, checked concurrently."""
        names = self.installed
        answers = await asyncio.gather(*(self.availability(name) for name in names))
        return [
            ProviderStatus(
                name=name,
                available=answer.available,
                model=self.model_of(name) if name in self._contexts else "",
                current=name == self._current,
                reason=answer.reason,
                suggestion=answer.suggestion,
                kind=answer.kind,
                broken=name not in self._contexts,
                circuits=tuple(self.breakers.status(name)),
                quota=self._contexts[name].quota.snapshot(self.model_of(name)) if name in self._contexts else None,
            )
            for name, answer in zip(names, answers, strict=True)
        ]

    async def test(self, name: str, prompt: str = TEST_PROMPT) -> CompletionResult:
        """Send a tiny real completion to ``name`` only (no fallback)."""
        name = name.strip().lower()
        if name not in self.installed:
            raise self._unknown_error(name)
        return await self.complete(prompt, provider=name, fallback=False, max_tokens=16)

    def stats(self) -> dict[str, ProviderStats]:
        """Each provider's figures since this manager started (or was reset)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start this session's counters again from zero (the history stays; see :meth:`clear_history`)."""
        self._stats.reset()

    def usage_summary(self, since: float | None = None, provider: str | None = None) -> list[ProviderUsage]:
        """Per-provider figures from the usage history (all runs; ``since`` a timestamp)."""
        from patcode_core.accounting.history import summarize

        return summarize(self.usage.store, since, provider)

    def clear_history(self) -> int:
        """Forget the whole usage history (every run); returns how many rows went."""
        self._stats.reset()
        return self.usage.store.clear_attempts()

    async def aclose(self) -> None:
        """Stop the circuit checks, close every provider's HTTP client and write the pending history."""
        await self.prober.aclose()
        await asyncio.gather(*(context.aclose() for context in self._contexts.values()))
        if self.shared is not None:
            await self.shared.aclose()
        if self.usage.opened:
            await asyncio.to_thread(self.usage.close)

    async def __aenter__(self) -> LLMManager:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class SyncLLMManager:
    """The same manager for scripts without an event loop: every method blocks."""

    def __init__(self, manager: LLMManager | None = None, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.manager = manager if manager is not None else LLMManager(**kwargs)

    def run(self, awaitable: Any) -> Any:
        """Run one coroutine on this facade's private event loop."""
        try:
            return self._runner.run(awaitable)
        except RuntimeError as exc:
            if "running event loop" in str(exc) or "cannot be called from a running" in str(exc):
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                raise PatCodeError(t("error.sync_in_loop"), t("suggest.use_async")) from None
            raise

    def complete(self, prompt: MessagesInput, **options: Any) -> CompletionResult:
        """Blocking :meth:`LLMManager.complete`."""
        return self.run(self.manager.complete(prompt, **options))

    def stream(self, prompt: MessagesInput, **options: Any) -> Iterator[StreamEvent]:
        """:meth:`LLMManager.stream` as a plain iterator; stopping early (or Ctrl-C) closes the stream."""
        events = self.manager.stream(prompt, **options)

        async def step() -> StreamEvent:
            return await anext(events)

        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self._close_stream(events)

    def _close_stream(self, events: AsyncIterator[StreamEvent]) -> None:
        closer = getattr(events, "aclose", None)
        if closer is not None:
            self.run(closer())

    def providers_status(self) -> list[ProviderStatus]:
        """Blocking :meth:`LLMManager.providers_status`."""
        return self.run(self.manager.providers_status())

    def test(self, name: str) -> CompletionResult:
        """Blocking :meth:`LLMManager.test`."""
        return self.run(self.manager.test(name))

    def get_current_provider(self) -> str | None:
        """The provider a request goes to first."""
        return self.manager.get_current_provider()

    def switch(self, name: str) -> str:
        """Make ``name`` the current provider."""
        return self.manager.switch(name)

    def stats(self) -> dict[str, ProviderStats]:
        """Each provider's figures."""
        return self.manager.stats()

    def close(self) -> None:
        """Close the clients and the private event loop."""
        try:
            self._runner.run(self.manager.aclose())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncLLMManager:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
