"""Time limits learned from each provider and model's own streams.

Per provider and model PatCode keeps the last :data:`WINDOW` samples of three
timings of its streamed answers:

- ``first_byte``: from sending to the first chunk of any kind;
- ``first_token``: from sending to the first text;
- ``gap``: the longest silence between two chunks of one answer.

They are kept in the usage store (table ``timings``), so they carry across
runs. From them come the limits a stream gets:

- first token: ``max(FIRST_TOKEN_FLOOR, K × p99(first_token))``;
- silence mid-answer: ``max(GAP_FLOOR, K × p99(gap))``;

each capped by its configured ceiling (``LLM_FIRST_TOKEN_TIMEOUT``,
``LLM_STREAM_IDLE_TIMEOUT`` and the provider's ``*_TIMEOUT``). With fewer
than :data:`MIN_SAMPLES` samples, :data:`NO_HISTORY` seconds (under the same
ceilings): a silent or very slow provider is left within about 10 s; a user
who set ``LLM_FIRST_TOKEN_TIMEOUT`` / ``LLM_STREAM_IDLE_TIMEOUT`` gets that
value instead (a provider slower than 10 s to start can then be learned). A
provider that declares a cold-start allowance (``ProviderInfo.cold_start``)
gets it added to the first-token limit of its first request in the process,
and that request's timings are not learned (a model loading is not its pace).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Samples kept per provider, model and timing.
WINDOW = 200
#: Samples needed before a learned limit replaces :data:`NO_HISTORY`.
MIN_SAMPLES = 5
#: Seconds a stream gets for its first token, and for a silence, while nothing is learned yet.
NO_HISTORY = 10.0
#: A learned limit is this many times the 99th percentile of what was seen.
K = 3.0
#: Learned limits never go below these (a very fast provider still gets room for a slow moment).
FIRST_TOKEN_FLOOR = 3.0
GAP_FLOOR = 3.0
#: The 95th percentile of the first token is the moment ``LLM_HEDGE=auto`` starts a second provider
#: (with no history, half the first-token limit: halfway to giving up on it).
HEDGE_PERCENTILE = 0.95
TIMINGS = ("first_byte", "first_token", "gap")


def percentile(samples: Iterable[float], fraction: float) -> float:
    """The nearest-rank ``fraction`` percentile (0..1) of ``samples`` (which must not be empty)."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The limits in force for one provider and model's next stream.

    :param first_token: seconds from sending to the first text.
    :param idle: seconds of silence allowed mid-answer.
    :param learned: whether they come from history (``False``: :data:`NO_HISTORY` or a ceiling).
    :param samples: streams the figures come from.
    :param first_token_p99: the 99th percentile seen (``None`` without history).
    :param gap_p99: the same for the longest silence of an answer.
    :param hedge_after: when ``LLM_HEDGE=auto`` starts the next provider: the 95th percentile of
        the first token, or half the first-token limit while nothing is learned.
    """

    first_token: float
    idle: float
    learned: bool
    samples: int
    first_token_p99: float | None = None
    gap_p99: float | None = None
    hedge_after: float = 0.0


@dataclass(frozen=True, slots=True)
class Timing:
    """One streamed answer's timings, as the usage store keeps them."""

    provider: str
    model: str
    first_byte: float
    first_token: float
    gap: float


class _Window:
    """The last :data:`WINDOW` samples of each timing, and the limits derived from them (cached)."""

    def __init__(self) -> None:
        self.samples: dict[str, deque[float]] = {name: deque(maxlen=WINDOW) for name in TIMINGS}
        self.derived: tuple[float | None, float | None, float | None] | None = None

    def add(self, timing: dict[str, float]) -> None:
        for name, value in timing.items():
            if math.isfinite(value) and value >= 0:
                self.samples[name].append(value)
        self.derived = None

    def figures(self) -> tuple[float | None, float | None, float | None]:
        """(p99 first token, p99 gap, p95 first token), ``None`` each without enough samples."""
        if self.derived is None:
            tokens, gaps = self.samples["first_token"], self.samples["gap"]
            self.derived = (
                percentile(tokens, 0.99) if len(tokens) >= MIN_SAMPLES else None,
                percentile(gaps, 0.99) if len(gaps) >= MIN_SAMPLES else None,
                percentile(tokens, HEDGE_PERCENTILE) if len(tokens) >= MIN_SAMPLES else None,
            )
        return self.derived


class LearnedLimits:
    """Every provider and model's timing windows, loaded from the store the first time each is needed.

    :param load: ``(provider, model) -> recent Timing rows`` from the usage store (newest last).
    :param save: keeps one answer's timings in the usage store (off the caller's path).
    :param first_token_ceiling: ``LLM_FIRST_TOKEN_TIMEOUT``.
    :param idle_ceiling: ``LLM_STREAM_IDLE_TIMEOUT``.
    :param cold_start: a provider's declared cold-start allowance (``ProviderInfo.cold_start``).
    """

    def __init__(
        self,
        load: Callable[[str, str], list[Timing]],
        save: Callable[[Timing], None],
        *,
        first_token_ceiling: float,
        idle_ceiling: float,
        no_history: tuple[float, float] = (NO_HISTORY, NO_HISTORY),
        users_ceiling: bool = False,
        cold_start: Callable[[str], float] = lambda provider: 0.0,
    ) -> None:
        self._load = load
        self._save = save
        self._cold_start = cold_start
        #: (first token, silence) while nothing is learned: NO_HISTORY, or what the user set as the ceiling.
        self.no_history = no_history
        #: Whether the user set LLM_FIRST_TOKEN_TIMEOUT (then a cold start does not raise it).
        self.users_ceiling = users_ceiling
        self.first_token_ceiling = first_token_ceiling
        self.idle_ceiling = idle_ceiling
        self._windows: dict[tuple[str, str], _Window] = {}
        self._warm: set[str] = set()  # providers that already answered in this process
        self._lock = threading.Lock()

    def _window(self, provider: str, model: str) -> _Window:
        key = (provider, model)
        window = self._windows.get(key)
        if window is None:
            window = _Window()
            for row in self._load(provider, model)[-WINDOW:]:
                window.add({"first_byte": row.first_byte, "first_token": row.first_token, "gap": row.gap})
            with self._lock:
                window = self._windows.setdefault(key, window)
        return window

    def limits(self, provider: str, model: str, provider_timeout: float, *, steady: bool = False) -> StreamLimits:
        """The limits for the next stream of ``provider`` and ``model``.

        :param provider_timeout: the provider's ``*_TIMEOUT``, a ceiling of both.
        :param steady: leave out the cold-start allowance (the limits once the provider has answered).
        """
        cold_start = 0.0 if steady else self._cold_start(provider)
        window = self._window(provider, model)
        token_p99, gap_p99, hedge_after = window.figures()
        token_ceiling = min(self.first_token_ceiling, provider_timeout)
        idle_ceiling = min(self.idle_ceiling, provider_timeout)
        first_token = max(FIRST_TOKEN_FLOOR, K * token_p99) if token_p99 is not None else self.no_history[0]
        idle = max(GAP_FLOOR, K * gap_p99) if gap_p99 is not None else self.no_history[1]
        if cold_start > 0 and provider not in self._warm:
            first_token += cold_start
            if not self.users_ceiling:  # a ceiling the user set is kept, cold or not
                token_ceiling += cold_start
        first_token = min(first_token, token_ceiling)
        if hedge_after is None:  # nothing learned yet: halfway to giving up on the first token
            hedge_after = first_token / 2
        return StreamLimits(
            first_token=first_token,
            idle=min(idle, idle_ceiling),
            learned=token_p99 is not None,
            samples=len(window.samples["first_token"]),
            first_token_p99=token_p99,
            gap_p99=gap_p99,
            hedge_after=hedge_after,
        )

    def record(self, provider: str, model: str, first_byte: float, first_token: float, gap: float) -> None:
        """Learn one complete streamed answer's timings (the first of a cold provider is only noted)."""
        cold = provider not in self._warm
        self._warm.add(provider)
        if cold and self._cold_start(provider) > 0:
            return
        timing = {"first_byte": first_byte, "first_token": first_token, "gap": gap}
        self._window(provider, model).add(timing)
        self._save(Timing(provider, model, first_byte, first_token, gap))

    def adopt(self, provider: str, model: str, first_tokens: list[float], gaps: list[float]) -> None:
        """Take the figures every instance learned (``LLM_STATE_URL``) as this window's first-token and gap samples."""
        window = self._window(provider, model)
        with self._lock:
            for name, values in (("first_token", first_tokens), ("gap", gaps)):
                if values:
                    window.samples[name].clear()
                    window.samples[name].extend(value for value in values[-WINDOW:] if math.isfinite(value) and value >= 0)
            window.derived = None

    def cold_start(self, provider: str) -> float:
        """The allowance ``provider``'s next first token still gets (0 once it has answered in this process)."""
        return 0.0 if provider in self._warm else self._cold_start(provider)

    def mark_warm(self, provider: str) -> None:
        """``provider`` has answered in this process (a plain call counts too)."""
        self._warm.add(provider)

    def known(self) -> list[tuple[str, str]]:
        """The provider and model pairs whose windows are loaded."""
        return sorted(self._windows)


__all__ = ["LearnedLimits", "StreamLimits", "Timing", "percentile"]
