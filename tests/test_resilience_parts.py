"""The resilience parts on their own, with a hand-driven clock: durations, limits, breaker, backoff."""

from __future__ import annotations

import pytest

from patcode_core.routing.breaker import BreakerBoard, CircuitBreaker, CircuitState
from patcode_core.routing.deadline import Deadline
from patcode_core.routing.durations import parse_duration
from patcode_core.routing.ratelimit import QuotaTracker, RequestsPerMinute
from patcode_core.routing.retry import MAX_BACKOFF, backoff_delay, retry_delay
from patcode_core.wire.transport import rate_limit_wait


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("2m59.56s", 179.56),
        ("12ms", 0.012),
        ("7.66s", 7.66),
        ("1h2m3s", 3723.0),
        ("250us", 0.00025),
        ("500µs", 0.0005),
        ("3", 3.0),
        ("0s", 0.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "s", "-3", "1s soon", "m1s"])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9", "x-ratelimit-reset-requests": "1m"}, 1.5),
        ({"retry-after": "2", "x-ratelimit-reset-tokens": "7.66s"}, 2.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m59.56s",
          "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "12ms"}, 179.56),
        ({"x-ratelimit-remaining-requests": "14", "x-ratelimit-reset-requests": "1s",
          "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6s"}, 6.0),
        ({}, None),
    ],
)
def test_rate_limit_wait_reads_every_header(headers: dict[str, str], seconds: float | None) -> None:
    assert rate_limit_wait(headers) == (pytest.approx(seconds) if seconds is not None else None)


def test_requests_per_minute_is_a_sliding_window() -> None:
    clock = Clock()
    limiter = RequestsPerMinute(3, clock)
    assert all(limiter.take() for _ in range(3))
    assert limiter.wait() == pytest.approx(60.0)
    assert not limiter.take()
    clock.advance(20)
    assert limiter.wait() == pytest.approx(40.0)
    clock.advance(40)
    assert limiter.wait() == 0.0 and limiter.take()
    assert limiter.wait() == 0.0  # the other two left the window at the same moment


def test_zero_rpm_is_unlimited() -> None:
    limiter = RequestsPerMinute(0, Clock())
    assert all(limiter.take() for _ in range(10_000)) and limiter.wait() == 0.0


def test_quota_blocks_a_model_until_its_reset() -> None:
    clock = Clock()
    quota = QuotaTracker(clock)
    quota.observe("m", 200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2.5s",
                             "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "1s"})
    assert quota.wait("m") == pytest.approx(2.5) and quota.wait("other") == 0.0
    assert quota.snapshot("m").remaining_requests == 0
    clock.advance(2.5)
    assert quota.wait("m") == 0.0


def test_quota_skips_a_prompt_bigger_than_the_tokens_left() -> None:
    clock = Clock()
    quota = QuotaTracker(clock)
    quota.observe("m", 200, {"x-ratelimit-remaining-requests": "10", "x-ratelimit-remaining-tokens": "100",
                             "x-ratelimit-reset-tokens": "4s"})
    assert quota.wait("m", tokens_needed=50) == 0.0
    assert quota.wait("m", tokens_needed=500) == pytest.approx(4.0)
    clock.advance(4)
    assert quota.wait("m", tokens_needed=500) == 0.0


def test_a_429_blocks_for_what_it_asks_and_blocks_never_shrink() -> None:
    clock = Clock()
    quota = QuotaTracker(clock)
    quota.observe("m", 429, {"retry-after": "7"})
    quota.block("m", 1.0)
    assert quota.wait("m") == pytest.approx(7.0)
    quota.observe("m", 429, {})  # nothing said: the earlier block stands
    assert quota.wait("m") == pytest.approx(7.0)


def test_circuit_opens_after_threshold_and_probes_once() -> None:
    clock = Clock()
    circuit = CircuitBreaker(threshold=3, cooldown=30, max_cooldown=100, clock=clock)
    assert not circuit.failure() and not circuit.failure()
    assert circuit.state is CircuitState.CLOSED and circuit.allow()
    assert circuit.failure()
    assert circuit.state is CircuitState.OPEN and not circuit.allow()
    assert circuit.retry_in() == pytest.approx(30)
    clock.advance(30)
    assert circuit.state is CircuitState.HALF_OPEN
    assert circuit.allow() and not circuit.allow()  # one probe only
    assert circuit.failure()  # the probe failed: open again, for longer
    assert circuit.state is CircuitState.OPEN and circuit.cooldown == 60
    clock.advance(60)
    assert circuit.allow() and circuit.failure() and circuit.cooldown == 100  # capped
    clock.advance(100)
    assert circuit.allow() and circuit.success()
    assert circuit.state is CircuitState.CLOSED and circuit.cooldown == 30 and circuit.failures == 0


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    circuit = CircuitBreaker(threshold=3, clock=Clock())
    circuit.failure(), circuit.failure(), circuit.success(), circuit.failure(), circuit.failure()
    assert circuit.state is CircuitState.CLOSED


def test_a_released_probe_lets_the_next_caller_probe() -> None:
    clock = Clock()
    circuit = CircuitBreaker(threshold=1, cooldown=5, clock=clock)
    circuit.failure()
    clock.advance(5)
    assert circuit.allow() and not circuit.allow()
    circuit.release()
    assert circuit.allow()


def test_board_keeps_one_circuit_per_provider_and_model() -> None:
    clock = Clock()
    board = BreakerBoard(lambda: CircuitBreaker(threshold=1, cooldown=10, clock=clock))
    board.get("acme", "big").failure()
    assert board.get("acme", "small").state is CircuitState.CLOSED
    [status] = board.status("acme")
    assert (status.model, status.state, status.failures, status.retry_in) == ("big", CircuitState.OPEN, 1, 10)
    assert board.status("other") == []


def test_backoff_grows_with_jitter_inside_bounds() -> None:
    assert backoff_delay(1, 0.5, rng=lambda: 0.0) == pytest.approx(0.25)
    assert backoff_delay(1, 0.5, rng=lambda: 1.0) == pytest.approx(0.5)
    assert backoff_delay(2, 0.5, rng=lambda: 0.0) == pytest.approx(0.5)
    assert backoff_delay(3, 0.5, rng=lambda: 1.0) == pytest.approx(2.0)
    assert backoff_delay(30, 0.5, rng=lambda: 1.0) == MAX_BACKOFF
    delays = {round(backoff_delay(2, 1.0), 6) for _ in range(50)}
    assert len(delays) > 40 and all(1.0 <= d <= 2.0 for d in delays)


def test_retry_is_never_sooner_than_asked() -> None:
    assert retry_delay(1, 0.5, asked=3.0, rng=lambda: 1.0) == 3.0
    assert retry_delay(3, 0.5, asked=0.1, rng=lambda: 1.0) == pytest.approx(2.0)


def test_deadline_counts_down() -> None:
    clock = Clock()
    deadline = Deadline(10, clock)
    assert deadline.remaining() == 10 and deadline.allows(9.9) and not deadline.allows(10)
    clock.advance(11)
    assert deadline.remaining() == 0 and deadline.expired
