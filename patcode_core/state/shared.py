"""State shared by every PatCode instance through one Redis server (``LLM_STATE_URL=redis://…``).

Keys, all under ``<prefix>:`` (``LLM_STATE_PREFIX``, default ``patcode``), each with a lifetime:

============================== =========== ==========================================================
key                            type        lifetime
============================== =========== ==========================================================
``rpm:<provider>``             sorted set  the window (60 s) after the last send
``block:<provider>:<model>``   string      the block
``circuit:<provider>:<model>`` hash        the cooldown, then 600 s half-open (fields ``until``, ``reason``)
``probe:<provider>:<model>``   string      the probe's lease (the value: the instance that holds it)
``latency:<provider>:<model>`` list        a day after the last figure (the last 200, newest first)
``cache:<sha256>``             string      the cache entry's (the answer's JSON only)
``turn:<name>``                string      a day after the last turn
``busy``                       sorted set  600 s after the last change (instances by last change)
``busy:<instance>``            hash        600 s after the instance's last change (provider → in flight)
============================== =========== ==========================================================

Nothing else is written: no API key, no prompt (a cache key that is not already a hex digest is hashed first),
and circuit reasons pass through :func:`patcode_core.redact.redact`.

**When Redis fails** (refused, unreachable, wrong password, or slower than ``timeout``, 0.2 s by default),
the call is answered from a :class:`~patcode_core.state.local.LocalState` with the same semantics, one warning
is logged for the outage, and later calls go straight to the local state (no network wait) while the connection
is retried in the background (0.5 s, then doubling up to 30 s). When Redis answers again, one line says so and
the shared state is used again. Every change is also made to the local state (write-through), so during an
outage an instance still knows its own recent sends, blocks, circuits, latencies and cached answers; the local
state is not copied to Redis when it comes back, except this instance's in-flight counts, which it always knows
whole. No method raises because of Redis.

Every method costs **one round trip** while Redis is up (a script, one command or one pipeline) and none while
it is down. A script the server has not seen (after a restart) costs one more, once: ``EVALSHA`` answers
``NOSCRIPT`` and the script is sent whole with ``EVAL``. Standalone Redis (the in-flight totals read
each instance's key from a script, which Redis Cluster would refuse).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from patcode_core import redact as redaction
from patcode_core.log import get_logger
from patcode_core.state import scripts
from patcode_core.state.base import (
    ADMITTED,
    CLOSED,
    HALF_OPEN,
    HALF_OPEN_KEEP,
    IN_FLIGHT_TTL,
    LATENCIES_KEPT,
    LATENCY_TTL,
    OPEN,
    RPM_WINDOW,
    TURN_TTL,
    Admission,
    CircuitState,
    cache_id,
    clean_reason,
    positive,
)
from patcode_core.state.local import LocalState

T = TypeVar("T")

DEFAULT_PREFIX = "patcode"
DEFAULT_TIMEOUT = 0.2
SCHEMES = ("redis", "rediss", "unix")


def masked_url(url: str) -> str:
    """``url`` with its password (in ``user:password@`` or a ``?password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        query = urlencode([(k, redaction.MASK if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)])
        url = urlunsplit(parts._replace(query=query))
    except ValueError:
        pass
    return redaction.redact(url)


def url_secrets(url: str) -> list[str]:
    """The password of a Redis URL (``user:password@`` or ``?password=``), for redaction."""
    found = [redaction.url_password(url) or ""]
    try:
        found += [v for k, v in parse_qsl(urlsplit(url).query) if k.lower() == "password"]
    except ValueError:
        pass
    return [value for value in found if value]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class SharedState:
    """Rate limits, quota blocks, circuits, latency, cache and counters shared through Redis (see the module).

    :param url: ``redis://[user:password@]host:port/db``, ``rediss://…`` or ``unix://…``.
    :param prefix: the namespace of every key (``LLM_STATE_PREFIX``).
    :param timeout: seconds Redis may take to connect or answer before the local state answers instead.
    :param window: the requests-per-minute window, seconds (60; tests shorten it).
    :param latencies_kept: latency figures kept per provider and model.
    :param retry_after: / :param retry_max: the first and the longest wait between reconnection tries.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, *, timeout: float = DEFAULT_TIMEOUT,
                 window: float = RPM_WINDOW, latencies_kept: int = LATENCIES_KEPT, retry_after: float = 0.5,
                 retry_max: float = 30.0) -> None:
        self._secrets = url_secrets(url)
        redaction.remember(self._secrets)
        self.url = masked_url(url)
        if urlsplit(url).scheme.lower() not in SCHEMES:
            raise ValueError(f"not a Redis URL (redis://, rediss:// or unix://): {self.url}")
        prefix = prefix.strip()
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError(f"the key prefix must be non-empty and without spaces: {prefix!r}")
        self.prefix = prefix
        self.timeout = timeout
        self.window = window
        self.latencies_kept = latencies_kept
        self.local = LocalState(window=window, latencies_kept=latencies_kept)
        self.instance = secrets.token_hex(8)
        self._url = url
        self._sends = itertools.count()
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._down_since: float | None = None
        self._retry_after = retry_after
        self._retry_max = retry_max
        self._backoff = retry_after
        self._next_try = 0.0
        self._reconnecting: asyncio.Task[None] | None = None
        self._log = get_logger()

    def __repr__(self) -> str:
        state = "local" if self._down_since is not None else "shared"
        return f"SharedState(url={self.url!r}, prefix={self.prefix!r}, {state})"

    @property
    def shared(self) -> bool:
        """Whether calls go to Redis now (``False`` during an outage, while the local state answers)."""
        return self._down_since is None

    def key(self, *parts: str) -> str:
        """The full name of a key: ``<prefix>:<part>:<part>…``."""
        return ":".join((self.prefix, *parts))

    # -- the connection ---------------------------------------------------------------------------------------

    def _new_client(self) -> Any:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = aioredis.Redis.from_url(
            self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, decode_responses=True,
            health_check_interval=0, client_name=f"patcode-{self.instance}",
        )
        self._scripts = {name: client.register_script(text) for name, text in scripts.ALL.items()}
        return client

    def _current_client(self) -> Any:
        """The client for the running event loop, or ``None`` while Redis is away (a reconnection may start)."""
        loop = asyncio.get_running_loop()
        if self._down_since is not None:
            if time.monotonic() >= self._next_try and (self._reconnecting is None or self._reconnecting.done()):
                self._reconnecting = loop.create_task(self._reconnect(), name="patcode-state-reconnect")
            return None
        if self._client is None or self._loop is not loop:
            # A client's connections belong to one event loop; another loop (asyncio.run per call) gets its own.
            self._client, self._loop = self._new_client(), loop
        return self._client

    def _went_down(self, error: BaseException) -> None:
        now = time.monotonic()
        self._client = None  # its pooled connections may be dead; the reconnection builds a fresh one
        if self._down_since is not None:
            return
        self._down_since = now
        self._backoff = self._retry_after
        self._next_try = now + self._backoff
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self._log.warning("state_redis_down", url=self.url, error=redaction.redact(detail, self._secrets))

    async def _reconnect(self) -> None:
        client = self._new_client()
        try:
            async with asyncio.timeout(self.timeout * 3):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.ping()
                    for script in self._scripts.values():
                        pipe.script_load(script.script)
                    counts = await self.local.in_flight_counts()  # this instance's, as they are now
                    pipe.delete(self.key("busy", self.instance))
                    for provider, count in counts.items():
                        pipe.evalsha(self._scripts["in_flight"].sha, 2, self.key("busy", self.instance),
                                     self.key("busy"), provider, count, _ms(IN_FLIGHT_TTL), self.instance)
                    answers = await pipe.execute(raise_on_error=False)
            if isinstance(answers[0], BaseException):  # a script the server refuses is not a reason to stay away
                raise answers[0]
        except (OSError, TimeoutError, ValueError, _redis_error()) as error:
            self._backoff = min(self._backoff * 2, self._retry_max)
            self._next_try = time.monotonic() + self._backoff
            self._log.debug("state_redis_retry", url=self.url, error=type(error).__name__, seconds=self._backoff)
            await _close_quietly(client)
            return
        down_for = time.monotonic() - (self._down_since or time.monotonic())
        self._client, self._loop, self._down_since = client, asyncio.get_running_loop(), None
        self._log.info("state_redis_back", url=self.url, seconds=f"{down_for:.1f}")

    async def _run(self, remote: Callable[[Any], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        client = self._current_client()
        if client is None:
            return await local()
        try:
            async with asyncio.timeout(self.timeout * 3):
                return await remote(client)
        except (OSError, TimeoutError, ValueError, _redis_error()) as error:
            self._went_down(error)
            return await local()

    async def _script(self, client: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script by its digest; the first time a server has not seen it, send it whole (``EVAL``)."""
        from redis.exceptions import NoScriptError

        script = self._scripts[name]
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(script.script, len(keys), *keys, *args)

    async def aclose(self) -> None:
        """Close the connections and stop a reconnection in progress."""
        if self._reconnecting is not None and not self._reconnecting.done():
            self._reconnecting.cancel()
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await _close_quietly(client)

    # -- admission: circuit, block and budget at once ----------------------------------------------------------

    async def admit(self, provider: str, model: str, rpm: int) -> Admission:
        """May a request to ``provider``/``model`` go now? The circuit, the quota block and one send from the
        requests-per-minute budget (``rpm`` 0: none), checked and taken atomically. One round trip (a script):
        the whole of the shared state's cost on a request's hot path.
        """
        member = f"{self.instance}:{next(self._sends)}"

        async def remote(client: Any) -> Admission:
            verdict, amount = await self._script(
                client, "admit",
                [self.key("circuit", provider, model), self.key("block", provider, model), self.key("rpm", provider)],
                [max(0, int(rpm)), int(self.window * 1_000_000), member],
            )
            verdict, amount = int(verdict), int(amount)
            if verdict == 0:
                if rpm > 0:
                    await self.local.take_rpm(provider, rpm)  # remembered here too, for an outage
                return ADMITTED
            if verdict == 1:
                return Admission(OPEN, amount / 1000)
            if verdict == 2:
                return Admission("blocked", amount / 1000)
            return Admission("rpm", amount / 1_000_000)

        return await self._run(remote, lambda: self.local.admit(provider, model, rpm))

    # -- quota blocks ------------------------------------------------------------------------------------------

    async def block(self, provider: str, model: str, seconds: float) -> None:
        """Skip ``provider``/``model`` everywhere for ``seconds`` (its quota is out); a longer block already there stays.

        One round trip (a script).
        """
        seconds = positive(seconds)
        if not seconds:
            return
        await self.local.block(provider, model, seconds)

        async def remote(client: Any) -> None:
            await self._script(client, "block", [self.key("block", provider, model)], [_ms(seconds)])

        await self._run(remote, _nothing)

    # -- circuits ----------------------------------------------------------------------------------------------

    async def open_circuit(self, provider: str, model: str, seconds: float, reason: str) -> None:
        """Open ``provider``/``model``'s circuit for ``seconds`` (then half-open) for every instance.

        ``reason`` is an error kind and a short cause; it is redacted and cut before it is stored.
        One round trip (a script).
        """
        seconds = positive(seconds)
        await self.local.open_circuit(provider, model, seconds, reason)

        async def remote(client: Any) -> None:
            await self._script(client, "open_circuit", [self.key("circuit", provider, model)],
                               [_ms(seconds), _ms(HALF_OPEN_KEEP), clean_reason(reason)])

        await self._run(remote, _nothing)

    async def circuit(self, provider: str, model: str) -> CircuitState:
        """The circuit as every instance sees it: ``closed``, ``open`` with the seconds left, or ``half_open``.

        One round trip (a script).
        """

        async def remote(client: Any) -> CircuitState:
            answer = await self._script(client, "circuit", [self.key("circuit", provider, model)], [])
            if not answer:
                return CircuitState(CLOSED)
            left = int(answer[0])
            return CircuitState(OPEN, left / 1000) if left > 0 else CircuitState(HALF_OPEN)

        return await self._run(remote, lambda: self.local.circuit(provider, model))

    async def close_circuit(self, provider: str, model: str) -> None:
        """Close the circuit (it answers again) and release its probe lease. One round trip (``DEL``)."""
        await self.local.close_circuit(provider, model)

        async def remote(client: Any) -> None:
            await client.delete(self.key("circuit", provider, model), self.key("probe", provider, model))

        await self._run(remote, _nothing)

    async def claim_probe(self, provider: str, model: str, seconds: float) -> bool:
        """Claim the right to probe the circuit for ``seconds``: ``True`` for one instance only (the holder renews
        its lease each time) until the lease ends or the circuit closes. One round trip (a script).
        """
        seconds = positive(seconds)

        async def remote(client: Any) -> bool:
            held = await self._script(client, "claim_probe", [self.key("probe", provider, model)],
                                      [self.instance, _ms(seconds)])
            return bool(held)

        return await self._run(remote, lambda: self.local.claim_probe(provider, model, seconds))

    # -- learned latency ---------------------------------------------------------------------------------------

    async def record_latency(self, provider: str, model: str, seconds: float) -> None:
        """Add one latency figure (seconds); the last :attr:`latencies_kept` are kept.

        One round trip (a ``MULTI`` pipeline: ``LPUSH``, ``LTRIM``, ``PEXPIRE``).
        """
        if not math.isfinite(seconds) or seconds < 0:
            return
        key = self.key("latency", provider, model)
        await self.local.record_latency(provider, model, seconds)

        async def remote(client: Any) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, repr(float(seconds)))
                pipe.ltrim(key, 0, self.latencies_kept - 1)
                pipe.pexpire(key, _ms(LATENCY_TTL))
                await pipe.execute()

        await self._run(remote, _nothing)

    async def latencies(self, provider: str, model: str) -> list[float]:
        """The figures kept, oldest first, from every instance. One round trip (``LRANGE``)."""

        async def remote(client: Any) -> list[float]:
            values = await client.lrange(self.key("latency", provider, model), 0, self.latencies_kept - 1)
            return [float(value) for value in reversed(values)]

        return await self._run(remote, lambda: self.local.latencies(provider, model))

    # -- response cache ----------------------------------------------------------------------------------------

    async def cache_get(self, key: str) -> str | None:
        """The cached answer's JSON under ``key`` (a hex digest; anything else is hashed), or ``None``.

        One round trip (``GET``).
        """
        stored = self.key("cache", cache_id(key))

        async def remote(client: Any) -> str | None:
            return await client.get(stored)

        return await self._run(remote, lambda: self.local.cache_get(key))

    async def cache_put(self, key: str, answer_json: str, ttl: float) -> None:
        """Keep ``answer_json`` (the answer only) under ``key`` for ``ttl`` seconds (0: not kept).

        One round trip (``SET PX``).
        """
        ttl = positive(ttl)
        if not ttl:
            return
        stored = self.key("cache", cache_id(key))
        await self.local.cache_put(key, answer_json, ttl)

        async def remote(client: Any) -> None:
            await client.set(stored, answer_json, px=_ms(ttl))

        await self._run(remote, _nothing)

    # -- counters ----------------------------------------------------------------------------------------------

    async def next_turn(self, name: str) -> int:
        """The next number of the counter ``name`` (1, 2, 3 … across every instance), for round-robin.

        One round trip (a pipeline: ``INCR``, ``PEXPIRE``).
        """
        key = self.key("turn", name)

        async def remote(client: Any) -> int:
            async with client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, _ms(TURN_TTL))
                turn, _ = await pipe.execute()
            return int(turn)

        return await self._run(remote, lambda: self.local.next_turn(name))

    async def in_flight(self, provider: str, delta: int) -> int:
        """Count requests in flight to ``provider`` (``+1`` when one starts, ``-1`` when it ends).

        :return: this instance's count after the change (never below 0). One round trip (a script that writes
          the count this instance keeps itself).
        """
        return await self.set_in_flight(provider, await self.local.in_flight(provider, 0) + delta)

    async def set_in_flight(self, provider: str, count: int) -> int:
        """Publish this instance's requests in flight to ``provider`` as they are now (absolute: a publication
        skipped or lost leaves no drift). One round trip (a script).

        :return: the count kept (never below 0).
        """
        count = await self.local.set_in_flight(provider, count)

        async def remote(client: Any) -> int:
            await self._script(client, "in_flight", [self.key("busy", self.instance), self.key("busy")],
                               [provider, count, _ms(IN_FLIGHT_TTL), self.instance])
            return count

        return await self._run(remote, lambda: _value(count))

    async def in_flight_counts(self) -> dict[str, int]:
        """Requests in flight per provider, summed over every live instance (for least-busy).

        One round trip (a script).
        """

        async def remote(client: Any) -> dict[str, int]:
            flat = await self._script(client, "in_flight_counts", [self.key("busy")],
                                      [_ms(IN_FLIGHT_TTL), self.key("busy", "")])
            return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2) if int(flat[i + 1]) > 0}

        return await self._run(remote, self.local.in_flight_counts)


async def _nothing() -> None:
    return None


async def _value(value: T) -> T:
    return value


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except (OSError, RuntimeError, _redis_error()):
        pass  # closing a connection to a server that is gone; nothing left to release
