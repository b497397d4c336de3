"""``LLM_ROUTING``: which healthy route a call tries first; the rest of the fallback order stays behind it.

Strategies (every one picks among *healthy* routes only: loaded, key set,
circuit closed, not rate-limited; when at most one is healthy the fallback
order is kept as it is):

- ``fallback``: the order as configured (the default);
- ``round-robin``: each healthy route in turn;
- ``weighted``: in proportion to ``LLM_WEIGHTS`` (``acme=3,local=1``; 1 when unnamed),
  smoothly interleaved (nginx's smooth weighted round-robin: exact shares, no bursts);
- ``least-latency``: the lowest EWMA of recent latency (first-token time for
  streams); a route never measured goes first, and one call in
  :data:`EXPLORATION` goes to another route so that a slow route's estimate can recover;
- ``least-cost``: the lowest estimated cost of this request, from the
  published prices and the prompt's size (unknown prices last);
- ``least-busy``: the fewest requests in flight (ties in turn);
- ``quota-aware``: the most ``x-ratelimit-remaining-requests`` headroom
  last reported (routes that never reported one after those that did).

Ties keep the fallback order unless said otherwise. The chosen route fails
like any other: the call walks on along the rest of the order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from patcode_core.config import FallbackEntry

STRATEGIES = ("fallback", "round-robin", "weighted", "least-latency", "least-cost", "least-busy", "quota-aware")
#: Share of least-latency picks sent to another healthy route than the fastest.
EXPLORATION = 0.05
#: Weight of the newest latency in the moving average.
ALPHA = 0.3
#: The longest cycle of ``weighted`` picks when instances share the turn (weights are scaled down beyond it).
MAX_CYCLE = 10_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A healthy route and what the strategies weigh.

    :param cost: this request's estimated USD here (``None``: unknown price).
    :param in_flight: requests this provider is serving now.
    :param remaining: requests its rate limit last said were left (``None``: never said).
    """

    entry: FallbackEntry
    cost: float | None = None
    in_flight: int = 0
    remaining: int | None = None


def parse_weights(text: str) -> dict[str, float]:
    """``acme=3,local=1`` → ``{"acme": 3.0, "local": 1.0}``.

    :raises ValueError: naming the entry that is not ``name=positive number``.
    """
    weights: dict[str, float] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(item) from None
        if not name.strip() or not math.isfinite(weight) or weight <= 0:
            raise ValueError(item)
        weights[name.strip().lower()] = weight
    return weights


class Balancer:
    """Orders a route for one call by ``strategy``; remembers turns, weights' credit and latencies.

    :param weights: by route (``provider/model``) or provider name, for ``weighted``.
    :param rng: the randomness of exploration (seeded in tests).
    """

    def __init__(self, strategy: str, weights: Mapping[str, float] | None = None, rng: random.Random | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(strategy)
        self.strategy = strategy
        self.weights = dict(weights or {})
        self._rng = rng or random.Random()
        self._turn = 0
        self._credit: dict[str, float] = {}
        self._latency: dict[str, float] = {}
        self._sequences: dict[tuple[float, ...], list[int]] = {}

    def observe(self, provider: str, model: str, seconds: float) -> None:
        """Fold one answer's latency (or first-token time) into the route's moving average."""
        key = str(FallbackEntry(provider, model))
        known = self._latency.get(key)
        self._latency[key] = seconds if known is None else ALPHA * seconds + (1 - ALPHA) * known

    def latency(self, entry: FallbackEntry) -> float | None:
        """The route's moving average of latency, ``None`` before its first answer."""
        return self._latency.get(str(entry))

    def _weight(self, entry: FallbackEntry) -> float:
        return self.weights.get(str(entry), self.weights.get(entry.provider, 1.0))

    @property
    def uses_turns(self) -> bool:
        """Whether picks follow a turn counter (shared by instances through ``LLM_STATE_URL``)."""
        return self.strategy in ("round-robin", "weighted")

    def pick(self, candidates: Sequence[Candidate], turn: int | None = None) -> int:
        """The index of the candidate to try first (``candidates`` in fallback order, at least one).

        :param turn: the turn of this call when instances share one counter (else this balancer's own).
        """
        strategy = self.strategy
        if turn is None and self.strategy in ("round-robin", "least-busy"):
            self._turn += 1
            turn = self._turn - 1
        if strategy == "round-robin":
            return (turn or 0) % len(candidates)
        if strategy == "weighted" and turn is not None:  # instances share the turn: the same interleaving everywhere
            sequence = self._sequence(tuple(self._weight(candidate.entry) for candidate in candidates))
            return sequence[turn % len(sequence)]
        if strategy == "weighted":
            keys = [str(candidate.entry) for candidate in candidates]
            total = 0.0
            for key, candidate in zip(keys, candidates, strict=True):
                weight = self._weight(candidate.entry)
                self._credit[key] = self._credit.get(key, 0.0) + weight
                total += weight
            best = max(range(len(keys)), key=lambda index: self._credit[keys[index]])
            self._credit[keys[best]] -= total
            return best
        if strategy == "least-latency":
            estimates = [self.latency(candidate.entry) for candidate in candidates]
            best = min(range(len(candidates)), key=lambda index: -1.0 if estimates[index] is None else estimates[index])
            if len(candidates) > 1 and estimates[best] is not None and self._rng.random() < EXPLORATION:
                others = [index for index in range(len(candidates)) if index != best]
                return self._rng.choice(others)
            return best
        if strategy == "least-cost":
            return min(range(len(candidates)), key=lambda index: math.inf if candidates[index].cost is None else candidates[index].cost)
        if strategy == "least-busy":
            fewest = min(candidate.in_flight for candidate in candidates)
            idle = [index for index, candidate in enumerate(candidates) if candidate.in_flight == fewest]
            return idle[(turn or 0) % len(idle)]
        if strategy == "quota-aware":
            return max(range(len(candidates)),
                       key=lambda index: (-1 if candidates[index].remaining is None else candidates[index].remaining, -index))
        return 0

    def _sequence(self, weights: tuple[float, ...]) -> list[int]:
        """One full cycle of smooth weighted round-robin over ``weights`` (as small integers), remembered."""
        known = self._sequences.get(weights)
        if known is None:
            scale = 1 if all(float(weight).is_integer() for weight in weights) else 10
            shares = [max(1, round(weight * scale)) for weight in weights]
            while sum(shares) > MAX_CYCLE:
                shares = [max(1, share // 2) for share in shares]
            credit, known = [0] * len(shares), []
            for _ in range(sum(shares)):
                credit = [have + share for have, share in zip(credit, shares, strict=True)]
                best = max(range(len(shares)), key=credit.__getitem__)
                credit[best] -= sum(shares)
                known.append(best)
            self._sequences[weights] = known
        return known

    def order(self, route: Sequence[FallbackEntry], describe: Callable[[FallbackEntry], Candidate | None],
              turn: int | None = None) -> list[FallbackEntry]:
        """``route`` with the chosen healthy entry first (``describe`` gives ``None`` for an unhealthy one)."""
        if self.strategy == "fallback":
            return list(route)
        candidates = [found for found in map(describe, route) if found is not None]
        if len(candidates) <= 1:
            return list(route)
        chosen = candidates[self.pick(candidates, turn)].entry
        return [chosen, *(entry for entry in route if entry != chosen)]
