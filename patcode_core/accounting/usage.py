"""What the manager tells the usage store: each attempt with its cost, and the per-provider response cache.

:class:`UsageLog` is the one object the router talks to. It prices answers
(:class:`~patcode_core.accounting.prices.PriceBook`), queues history rows (content only
with ``LLM_LOG_CONTENT=true``; keys never reach it), and looks answers up in
and adds them to the cache when ``LLM_CACHE=true`` and the provider has not
opted out (``<PREFIX>_CACHE=false``). Cache entries are scoped by endpoint
and account (:func:`cache_scope`): an answer cached from one base URL or key
is never served for another.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from patcode_core.accounting.prices import PriceBook
from patcode_core.paths import DATABASE_NAME
from patcode_core.types import CachedAnswer, CompletionRequest, Usage

if TYPE_CHECKING:
    from patcode_core.accounting.schema import Attempt
    from patcode_core.accounting.store_base import QueuedStore

__all__ = ["DATABASE_NAME", "UsageLog", "cache_key", "cache_scope", "normalized_text"]


def normalized_text(text: str) -> str:
    """Text as the cache compares it: ``\\r\\n`` as ``\\n``, no trailing spaces on lines, no outer blank space."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


def cache_scope(base_url: str, api_key: str | None) -> str:
    """Who answers: a digest of the endpoint and of a hash of the key, for :func:`cache_key`'s ``scope``.

    Two scopes differ when the base URL (trailing ``/`` aside) or the key
    differ, so an answer cached from one server or account is never served
    for another. Neither the key nor its hash is ever stored: only the cache
    key, a digest of this digest with the request.
    """
    key_hash = hashlib.sha256(b"patcode-cache-account\0" + (api_key or "").encode("utf-8", "surrogatepass")).hexdigest()
    endpoint = base_url.strip().rstrip("/")
    return hashlib.sha256(json.dumps([endpoint, key_hash if api_key else ""]).encode("utf-8", "surrogatepass")).hexdigest()


def cache_key(
    provider: str,
    model: str,
    request: CompletionRequest,
    extra: Mapping[str, object] | None = None,
    *,
    scope: str = "",
) -> str:
    """A digest of everything that changes the answer, normalised so equivalent requests meet.

    :param scope: :func:`cache_scope` of the provider's endpoint and key (``""``: unscoped).
    """
    body = {
        "provider": provider,
        "model": model,
        "scope": scope,
        "messages": [[message.role, normalized_text(message.content)] for message in request.messages],
        "temperature": round(float(request.temperature), 6),
        "max_tokens": int(request.max_tokens),
        "extra": dict(sorted((extra or {}).items())),
    }
    # surrogatepass: a prompt with a lone surrogate still gets its own key instead of an error
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


class UsageLog:
    """Prices, history and cache for the router.

    The database is opened at first use (a command that completes nothing
    never touches it). One that cannot be used is replaced by a store in
    memory and ``on_unavailable`` hears why, once: history is then off for
    this process but nothing else changes. Rows that cannot be written
    later (a full disk, a read-only ``PATCODE_HOME``, a PostgreSQL server
    gone) are reported once, as a ``history_rows_lost``, ``history_read_only``
    or ``history_rows_lost_server`` warning, at the next attempt or at
    :meth:`close`; the rows after them are written when they can be.

    :param path: the database file (or a function that finds it, called at first use), a PostgreSQL
        URL (``LLM_STATS_STORE=postgresql://…``), or ``None`` to keep everything in memory
        (``LLM_STATS_STORE=off``).
    :param prices: the price of each provider's models.
    :param cache_for: providers whose answers may be cached (empty: caching off).
    :param cache_ttl: seconds a cached answer stays valid.
    :param log_content: also store the prompt and the answer.
    :param on_unavailable: hears once why the database could not be opened.
    :param scopes: provider name → :func:`cache_scope` of its endpoint and key; a provider missing
        here is cached unscoped.
    """

    def __init__(
        self,
        path: Path | str | Callable[[], Path] | None,
        prices: PriceBook,
        *,
        cache_for: frozenset[str] = frozenset(),
        cache_ttl: float = 86400.0,
        log_content: bool = False,
        on_unavailable: Callable[[str], None] = lambda reason: None,
        scopes: Mapping[str, str] | None = None,
    ) -> None:
        self._path = path
        self._store: QueuedStore | None = None
        self._opening = threading.Lock()
        self._on_unavailable = on_unavailable
        self._warned = False
        self._lost_reported = False
        self._held_reported = False
        self.scopes: Mapping[str, str] = dict(scopes or {})
        self.prices = prices
        self.cache_for = cache_for
        self.cache_ttl = cache_ttl
        self.log_content = log_content
        #: Hear each history row as it is queued (the gateway's metrics); an observer's error is logged, never raised.
        self.observers: list[Callable[[Attempt], None]] = []

    @property
    def store(self) -> QueuedStore:
        """The open store (opened now if needed; in memory if the file or the server cannot be used)."""
        if self._store is None:
            with self._opening:
                if self._store is None:
                    # sqlite3 or psycopg only when used
                    from patcode_core.accounting.store_base import StoreUnavailable
                    from patcode_core.accounting.store_target import open_store, shown_target

                    target = self._path() if callable(self._path) else self._path
                    try:
                        self._store = open_store(target)
                    except StoreUnavailable as exc:
                        self._unavailable(f"{shown_target(target)}: {exc}")
                        self._store = open_store(None)
        return self._store

    @property
    def opened(self) -> bool:
        """True once the store was used (so closing it has work to do)."""
        return self._store is not None

    @property
    def persistent(self) -> bool:
        """True when the figures come from a database that outlives the process (a file, even read-only, or a server)."""
        return self.store.persistent

    def _unavailable(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            self._on_unavailable(reason)

    def _report_lost(self, store: QueuedStore) -> None:
        """Warn once that rows could not be written, and why; and once per outage that rows wait for a server."""
        if store.held and not self._held_reported:
            self._held_reported = True
            from patcode_core.accounting.store_base import HELD_MAX
            from patcode_core.log import get_logger

            get_logger().warning("history_rows_held_server", url=store.location, rows=store.held, reason=store.error,
                                 limit=HELD_MAX)
        elif not store.held:
            self._held_reported = False  # written: a later outage is warned about again
        if self._lost_reported or not store.lost:
            return
        self._lost_reported = True
        from patcode_core.log import get_logger

        if store.remote:
            get_logger().warning("history_rows_lost_server", url=store.location, rows=store.lost, reason=store.error)
            return
        folder = store.path.parent if store.path is not None else ""
        if store.read_only is not None:
            get_logger().warning("history_read_only", path=store.location, reason=store.read_only, folder=str(folder))
        else:
            get_logger().warning("history_rows_lost", path=store.location, rows=store.lost,
                                 reason=store.error, folder=str(folder))

    def close(self) -> None:
        """Write what is queued and close the database (warning once if rows could not be written)."""
        if self._store is not None:
            self._store.close()
            self._report_lost(self._store)

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        """USD of one answer, or ``None`` (unknown)."""
        return self.prices.cost(provider, model, usage)

    def attempt(
        self,
        provider: str,
        model: str,
        outcome: str,
        *,
        request: CompletionRequest | None = None,
        error_kind: str | None = None,
        latency: float | None = None,
        usage: Usage | None = None,
        ttft: float | None = None,
        cost: float | None = None,
        fallback_from: str | None = None,
        cached: bool = False,
        answer: str | None = None,
    ) -> None:
        """Queue one history row."""
        from patcode_core.accounting.schema import Attempt

        store = self.store
        usage = usage or Usage()
        prompt = None
        if self.log_content and request is not None and request.messages:
            prompt = request.messages[-1].content
        row = Attempt(
            at=time.time(),
            provider=provider,
            model=model,
            outcome=outcome,
            error_kind=error_kind,
            latency=latency,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            ttft=ttft,
            cost=cost,
            fallback_from=fallback_from,
            cached=cached,
            conversation=request.conversation if request is not None else None,
            prompt=prompt,
            answer=answer if self.log_content else None,
        )
        store.record(row)
        for observer in self.observers:
            try:
                observer(row)
            except Exception as exc:  # metrics never break a call
                from patcode_core.log import get_logger

                get_logger().debug("usage_observer_failed", error=repr(exc))
        self._report_lost(store)

    def key_of(self, provider: str, request: CompletionRequest) -> str:
        """The cache key of ``request`` at ``provider``: a digest, the same in every instance with the same settings."""
        return self._key(provider, request)

    def _key(self, provider: str, request: CompletionRequest) -> str:
        return cache_key(provider, request.model, request, scope=self.scopes.get(provider, ""))

    def cached(self, provider: str, request: CompletionRequest, key: str | None = None) -> CachedAnswer | None:
        """The cached answer for this request at ``provider`` (same endpoint and key), when caching is on for it.

        :param key: :meth:`key_of` this request, when the caller has it already.
        """
        if provider not in self.cache_for:
            return None
        return self.store.cached(key or self._key(provider, request))

    def remember(self, provider: str, request: CompletionRequest, answer: CachedAnswer) -> str | None:
        """Cache a complete answer (never an error, never one cut by the token limit).

        :return: the key it was kept under, or ``None`` when it was not kept (what a shared cache may keep too).
        """
        if provider not in self.cache_for or answer.finish_reason == "length" or not answer.text:
            return None
        key = self._key(provider, request)
        self.store.put_cached(key, provider, request.model, self.cache_ttl, answer)
        return key
