"""Rate limits: our own requests-per-minute cap, and what the provider's headers say is left.

:class:`RequestsPerMinute` keeps PatCode under a provider's published rate
(``<PROVIDER>_RPM``) before the provider has to refuse anything. :class:`QuotaTracker`
reads ``x-ratelimit-*`` (or the provider's own :class:`RateLimitHeaders`) on every answer and ``Retry-After`` on a 429, so a
model known to be out of quota until its reset is skipped instead of being hit
for another 429.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from patcode_core.routing.durations import MAX_WAIT, parse_duration
from patcode_core.wire.transport import rate_limit_wait

WINDOW = 60.0

MAX_REMAINING = 10**12
"""The largest remaining-requests or -tokens count believed from a header; larger ones are cut to it."""
_MAX_REMAINING = Decimal(MAX_REMAINING)


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """Where a provider says how much of its rate limit is left (``ProviderInfo.rate_limit_headers``).

    The default names are the ``x-ratelimit-*`` headers of chat-completions APIs,
    whose resets are durations (``6m0s``). A provider with its own names
    describes them here; ``reset_format="timestamp"`` reads the resets as
    RFC 3339 moments (``2026-11-26T04:05:06Z``), as Anthropic sends them.
    """

    requests_remaining: str = "x-ratelimit-remaining-requests"
    tokens_remaining: str = "x-ratelimit-remaining-tokens"
    requests_reset: str = "x-ratelimit-reset-requests"
    tokens_reset: str = "x-ratelimit-reset-tokens"
    reset_format: str = "duration"

    def seconds_until(self, value: str | None, now: float | None = None) -> float | None:
        """A reset header as seconds from now (``None`` when absent or unreadable; never negative)."""
        if not value:
            return None
        if self.reset_format != "timestamp":
            return parse_duration(value)
        from datetime import datetime

        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
        return max(0.0, moment - (time.time() if now is None else now))


class RequestsPerMinute:
    """A sliding one-minute window of at most ``rpm`` requests (0: unlimited).

    :param rpm: requests allowed in any 60 seconds.
    :param clock: a monotonic clock, replaceable in tests.
    """

    def __init__(self, rpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm = rpm
        self._clock = clock
        self._sent: deque[float] = deque()

    def wait(self) -> float:
        """Seconds until one more request fits in the window (0: it fits now)."""
        if self.rpm <= 0:
            return 0.0
        now = self._clock()
        while self._sent and now - self._sent[0] >= WINDOW:
            self._sent.popleft()
        if len(self._sent) < self.rpm:
            return 0.0
        return self._sent[0] + WINDOW - now

    def take(self) -> bool:
        """Count one request now if it fits; False (and nothing counted) when it does not."""
        if self.wait() > 0:
            return False
        if self.rpm > 0:
            self._sent.append(self._clock())
        return True


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    """What the provider last said about one model's quota."""

    remaining_requests: int | None
    remaining_tokens: int | None
    blocked_for: float


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    """A count such as ``x-ratelimit-remaining-tokens``: an int in ``[0, MAX_REMAINING]`` or ``None``.

    ``None`` when absent or unreadable (``inf``, ``nan``, negative, not a number);
    a finite number beyond :data:`MAX_REMAINING` (``1e999``, 400 digits) is cut to it.
    Never raises: a strange header must not throw a good answer away.
    """
    value = headers.get(name)
    if not value:
        return None
    try:
        number = Decimal(value)  # exact: no float overflow, no int-digits limit
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0:
        return None
    return int(min(number, _MAX_REMAINING))


class QuotaTracker:
    """Per model: until when the provider has told us not to send anything.

    :param clock: a monotonic clock, replaceable in tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, headers: RateLimitHeaders | None = None) -> None:
        self._clock = clock
        self.headers = headers or RateLimitHeaders()
        self._blocked_until: dict[str, float] = {}
        self._remaining: dict[str, tuple[int | None, int | None, float]] = {}
        #: Hears each new or longer block (``model``, seconds): how other instances learn it (``LLM_STATE_URL``).
        self.on_block: Callable[[str, float], None] | None = None

    def observe(self, model: str, status: int, headers: Mapping[str, str]) -> None:
        """Read one response's rate-limit headers (any status); never raises, whatever they hold."""
        now = self._clock()
        names = self.headers
        requests_left = _int_header(headers, names.requests_remaining)
        tokens_left = _int_header(headers, names.tokens_remaining)
        if requests_left is None and tokens_left is None and status != 429:
            return  # nothing to learn (a local server sends no counts): the reset alone is never used
        tokens_reset = names.seconds_until(headers.get(names.tokens_reset))
        if requests_left is not None or tokens_left is not None:
            self._remaining[model] = (requests_left, tokens_left, now + (tokens_reset or 0.0))
        if status == 429:
            wait = rate_limit_wait(headers)
            if wait is None:
                wait = max(names.seconds_until(headers.get(names.requests_reset)) or 0.0, tokens_reset or 0.0) or None
            if wait is not None:
                self.block(model, wait)
            return
        if requests_left == 0:
            reset = names.seconds_until(headers.get(names.requests_reset))
            if reset:
                self.block(model, reset)
        if tokens_left == 0 and tokens_reset:
            self.block(model, tokens_reset)

    def block(self, model: str, seconds: float) -> None:
        """Send nothing for ``model`` during ``seconds`` (never shortens an earlier block).

        ``seconds`` is cut to ``[0, MAX_WAIT]``; a ``nan`` blocks nothing.
        """
        if math.isnan(seconds):
            return
        seconds = min(max(0.0, seconds), MAX_WAIT)
        until = self._clock() + seconds
        if until > self._blocked_until.get(model, 0.0):
            self._blocked_until[model] = until
            if self.on_block is not None and seconds > 0:
                self.on_block(model, seconds)

    def wait(self, model: str, tokens_needed: int = 0) -> float:
        """Seconds before ``model`` can take a request of about ``tokens_needed`` tokens."""
        now = self._clock()
        wait = max(0.0, self._blocked_until.get(model, 0.0) - now)
        remaining = self._remaining.get(model)
        if remaining is not None:
            _, tokens_left, tokens_reset_at = remaining
            if tokens_left is not None and tokens_needed > tokens_left and tokens_reset_at > now:
                wait = max(wait, tokens_reset_at - now)
        return wait

    def snapshot(self, model: str) -> QuotaSnapshot:
        """What is known of ``model``'s quota now."""
        requests_left, tokens_left, _ = self._remaining.get(model, (None, None, 0.0))
        return QuotaSnapshot(requests_left, tokens_left, self.wait(model))
