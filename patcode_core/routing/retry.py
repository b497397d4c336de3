"""How long to wait before asking the same provider again."""

from __future__ import annotations

import random
from collections.abc import Callable

#: The longest pause between two tries of the same provider, whatever the attempt.
MAX_BACKOFF = 8.0
#: A 429 that asks for at most this long is waited out on the same provider;
#: a longer one sends the request to the next provider when there is one.
SHORT_RATE_LIMIT_WAIT = 2.0


def backoff_delay(retry: int, base: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: retry 1 waits 50-100 % of ``base``, retry 2 of ``2·base``…

    Half the delay is fixed and half random, so many clients that failed
    together do not come back together, yet nobody retries at once.
    """
    ceiling = min(MAX_BACKOFF, base * 2 ** max(0, retry - 1))
    return ceiling / 2 + rng() * ceiling / 2


def retry_delay(retry: int, base: float, asked: float | None, rng: Callable[[], float] = random.random) -> float:
    """The pause before ``retry``: the backoff, but never sooner than the provider ``asked``."""
    delay = backoff_delay(retry, base, rng)
    return max(delay, asked) if asked is not None else delay
