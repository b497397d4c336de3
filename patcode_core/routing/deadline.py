"""One overall time budget for a call, shared by every attempt, wait and fallback."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """Seconds left of a budget that started when this object was made.

    :param seconds: the whole budget (``LLM_REQUEST_DEADLINE``).
    :param clock: a monotonic clock, replaceable in tests.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self._ends - self._clock())

    @property
    def expired(self) -> bool:
        """True once the budget is spent."""
        return self.remaining() <= 0.0

    def allows(self, seconds: float) -> bool:
        """True when waiting ``seconds`` would still leave time to try."""
        return seconds < self.remaining()
