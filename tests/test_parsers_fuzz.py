"""Hostile input for every parser of header, duration, ``--since`` and setting text (issue 9).

Each parser takes any text and answers with a value or its documented
"unreadable" answer: never an exception, never ``inf``/``nan`` or an absurd
number. Properties run on generated input; the examples pin each value known to
have broken a parser once.
"""

from __future__ import annotations

import math
import os
import socket
from datetime import datetime, timezone
from email.utils import format_datetime
from unittest.mock import patch

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patcode_core.accounting.history import parse_since
from patcode_core.config import load_settings
from patcode_core.errors import ConfigError
from patcode_core.plugins import PluginHost
from patcode_core.routing.durations import MAX_WAIT, parse_duration
from patcode_core.routing.ratelimit import MAX_REMAINING, QuotaTracker
from patcode_core.wire.transport import rate_limit_wait, retry_after_seconds

# the autouse clean_environment fixture runs once per test, not per example: fine here,
# every example sets what it needs and restores it
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE = [
    "inf", "-inf", "+inf", "Infinity", "nan", "NaN", "-nan", "sNaN",
    "-1", "-0", "0", "-1s", "+1s", "1e400", "-1e400", "1e999", "1e-400", "1e400s", "1e9999999999999999999",
    "9" * 400, "9" * 400 + "s", "9" * 400 + "h", "1" + "0" * 5000, "99999999999999999999h",
    "1_000", "0x10", "١٢", "１２", "²", "", " ", "\t7\n", "\x00", "1s\x00", "\x01\x7f", "ÿ\x80", "🙂", "s", "1x",
    "Mon, 01 Jan 99999 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT",
    "01 Jan 2000 00:00:00 +9999999999999999999999", "1 Jan 2000 00:00:00 +99999", "1 jan 1 99:99:99",
]
NUMBERS = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.floats().map(repr),
    st.floats().map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
DURATIONS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**30), st.sampled_from(sorted(GO_UNITS))), min_size=1, max_size=4
).map(lambda parts: "".join(f"{count}{unit}" for count, unit in parts))
HTTP_DATES = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda when: format_datetime(when, usegmt=True)),
    st.builds(
        "{:02d} Jan {} {:02d}:00:00 {}".format,
        st.integers(0, 99),
        st.integers(-1, 10**6),
        st.integers(0, 99),
        st.sampled_from(["GMT", "-0000", "+2359", "-2359", "+9999", "+99999999999999999999", "XYZ"]),
    ),
)
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(), NUMBERS, DURATIONS, HTTP_DATES)
HEADER_NAMES = [
    "retry-after-ms", "retry-after",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
]
HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES), TEXT)


def _is_wait(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_WAIT)


# -- durations ---------------------------------------------------------------------------------


@FUZZ
@given(TEXT)
def test_any_text_is_a_sane_duration_or_none(text: str) -> None:
    assert _is_wait(parse_duration(text))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 999), st.sampled_from(sorted(GO_UNITS))), min_size=1, max_size=4))
def test_go_durations_read_exactly_up_to_the_cap(parts: list[tuple[int, int, str]]) -> None:
    text = "".join(f"{whole}.{fraction:03d}{unit}" for whole, fraction, unit in parts)
    seconds = sum((whole + fraction / 1000) * GO_UNITS[unit] for whole, fraction, unit in parts)
    assert parse_duration(text) == pytest.approx(min(seconds, MAX_WAIT))
    assert parse_duration(text, cap=None) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["inf", "-inf", "Infinity", "nan", "1e400", "1e400s", "1e3", "9" * 400, "9" * 400 + "s", "-1s", "+1s", "1_000",
     "١٢", "²s", "\x00", "1s\x00", "🙂"],
)
def test_hostile_durations_are_unreadable(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["25h", "99999999999999999999h", "9" * 300, "1" + "0" * 300 + "ms"])
def test_finite_durations_beyond_a_day_are_cut_to_it(text: str) -> None:
    assert parse_duration(text) == MAX_WAIT
    uncapped = parse_duration(text, cap=None)
    assert uncapped is not None and MAX_WAIT < uncapped < math.inf


def test_a_long_run_of_digits_is_read_in_linear_time() -> None:
    assert parse_duration("1" * 200_000 + "x") is None  # a backtracking scan would take minutes


# -- Retry-After and the reset headers ---------------------------------------------------------


@FUZZ
@given(HEADERS, st.floats(min_value=0, max_value=4e9))
def test_any_headers_give_a_sane_wait_or_none(headers: dict[str, str], now: float) -> None:
    assert _is_wait(retry_after_seconds(headers, now))
    assert _is_wait(retry_after_seconds(headers))
    assert _is_wait(rate_limit_wait(headers, now))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "1e400"}, None),
        ({"retry-after": "9" * 400}, None),
        ({"retry-after": "99999999"}, MAX_WAIT),
        ({"retry-after": "1e300"}, MAX_WAIT),
        ({"retry-after-ms": "1e400"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "-1500"}, None),
        ({"retry-after-ms": "1e400", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
        ({"retry-after": "Mon, 01 Jan 99999 00:00:00 GMT"}, None),
        ({"retry-after": "01 Jan 2000 00:00:00 +9999999999999999999999"}, None),
        ({"retry-after": "1 Jan 2000 00:00:00 +99999"}, None),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_WAIT),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
        ({"retry-after": "\x00\x01ÿ"}, None),
    ],
)
def test_hostile_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ratelimit-reset-requests": "inf"},
        {"x-ratelimit-reset-tokens": "1e400s", "x-ratelimit-remaining-tokens": "0"},
        {"x-ratelimit-reset-requests": "nan", "x-ratelimit-reset-tokens": "-1s"},
        {"retry-after": "nan", "x-ratelimit-reset-requests": "inf"},
    ],
)
def test_unreadable_resets_give_no_wait(headers: dict[str, str]) -> None:
    assert rate_limit_wait(headers) is None


def test_huge_resets_are_cut_to_a_day() -> None:
    assert rate_limit_wait({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "99999999h"}) == MAX_WAIT


def test_odd_bytes_on_the_wire_are_unreadable() -> None:
    headers = httpx.Headers([(b"retry-after", b"\xff\xfe\x80"), (b"x-ratelimit-reset-tokens", b"1\xb5s")])
    assert retry_after_seconds(headers) is None
    assert _is_wait(rate_limit_wait(headers))


# -- remaining requests and tokens -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@FUZZ
@given(st.integers(min_value=0, max_value=999), HEADERS, st.integers(min_value=0, max_value=10**15))
def test_quota_tracker_takes_any_headers_of_any_status(status: int, headers: dict[str, str], tokens: int) -> None:
    tracker = QuotaTracker(Clock())
    tracker.observe("m", status, headers)
    snapshot = tracker.snapshot("m")
    for count in (snapshot.remaining_requests, snapshot.remaining_tokens):
        assert count is None or (isinstance(count, int) and 0 <= count <= MAX_REMAINING)
    assert 0 <= snapshot.blocked_for <= MAX_WAIT
    assert 0 <= tracker.wait("m", tokens) <= MAX_WAIT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("-1", None),
        ("garbage", None),
        ("", None),
        ("\x00", None),
        ("1e9999999999999999999", None),
        ("9" * 400, MAX_REMAINING),
        ("1" + "0" * 5000, MAX_REMAINING),
        ("1e999", MAX_REMAINING),
        ("12.7", 12),
        ("-0", 0),
        ("0", 0),
        (" 5000 ", 5000),
    ],
)
def test_hostile_remaining_counts(value: str, expected: int | None) -> None:
    tracker = QuotaTracker(Clock())
    tracker.observe("m", 200, {"x-ratelimit-remaining-tokens": value, "x-ratelimit-remaining-requests": value})
    snapshot = tracker.snapshot("m")
    assert snapshot.remaining_tokens == expected and snapshot.remaining_requests == expected


def test_an_infinite_block_is_a_day_and_a_nan_one_nothing() -> None:
    tracker = QuotaTracker(Clock())
    tracker.block("a", math.nan)
    tracker.block("b", math.inf)
    tracker.observe("c", 429, {"retry-after": "inf"})
    assert tracker.wait("a") == 0 and tracker.wait("b") == MAX_WAIT and tracker.wait("c") == 0


# -- stats --since -----------------------------------------------------------------------------

NOW = 1_800_000_000.0


@FUZZ
@given(
    st.one_of(
        TEXT, st.from_regex(r"\A[0-9]{1,25}(\.[0-9]{0,3})?[dwhms]\Z"), st.from_regex(r"\A-?[0-9]{1,6}-[0-9]{2}-[0-9]{2}\Z")
    )
)
@example("99999999999999999999d")
def test_since_is_a_timestamp_or_value_error(text: str) -> None:
    try:
        moment = parse_since(text, NOW)
    except ValueError:
        return
    assert isinstance(moment, float) and math.isfinite(moment)
    datetime.fromtimestamp(moment)  # a moment a calendar holds


@pytest.mark.parametrize(
    "text",
    ["99999999999999999999d", "99999999999999999999w", "99999999999999999999h", "9" * 400 + "d", "1e400s", "inf",
     "nan", "-inf", "-1d", "infd", "nand", "²d", "١d", "10000-01-01", "0000-01-01", "", " ", "\x00", "5"],
)
def test_hostile_since_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_since(text, NOW)


def test_since_is_not_cut_to_the_network_cap() -> None:
    assert parse_since("48h", NOW) == NOW - 48 * 3600
    assert parse_since("1.5d", NOW) == NOW - 1.5 * 86400
    assert parse_since("100w", NOW) == NOW - 100 * 7 * 86400


# -- settings ----------------------------------------------------------------------------------

VARIABLES = [
    "LLM_TEMPERATURE", "LLM_MAX_TOKENS", "LLM_REQUEST_DEADLINE", "LLM_CONNECT_TIMEOUT", "LLM_PRICES",
    "LLM_FALLBACK_ORDER", "OPENAI_TIMEOUT", "OPENAI_BASE_URL", "OLLAMA_RPM", "PATCODE_LANG", "PATCODE_LOG_LEVEL",
]
ENV_TEXT = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
ENV_VALUES = st.one_of(
    st.sampled_from([value for value in HOSTILE if "\x00" not in value]),
    st.sampled_from(["1e308", "-1e308", "2.0000001", "0.0", "http://", "http://[::1", "http://h:99999", "ftp://h",
                     "a=1e400:0", "acme/*=inf:nan", "groq/m=-1:-1", "en", "EN_us.UTF-8", "debug", "DEBUG", "verbose"]),
    ENV_TEXT,
    NUMBERS,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(VARIABLES), ENV_VALUES, min_size=1))
def test_settings_take_any_value_and_only_raise_config_error(env: dict[str, str]) -> None:
    with patch.dict(os.environ, env):
        try:
            loaded = load_settings(PluginHost.discover(), env_file=None)
        except ConfigError as exc:
            assert any(name in str(exc) for name in env), str(exc)
            return
        llm = loaded.llm
        for problem in dict(getattr(llm, "problems", {}) or {}).values():  # a provider's bad value, once reported
            assert isinstance(problem, str) and any(name in problem for name in env), problem
        seconds = [llm.request_deadline, llm.connect_timeout] + [provider.timeout for provider in llm.providers.values()]
        assert all(math.isfinite(value) and value > 0 for value in seconds), seconds
        assert 0 <= llm.temperature <= 2 and isinstance(llm.max_tokens, int) and llm.max_tokens > 0


def test_settings_contract_examples() -> None:
    for name, value in [("LLM_REQUEST_DEADLINE", "inf"), ("LLM_CONNECT_TIMEOUT", "nan"), ("OPENAI_TIMEOUT", "inf"),
                        ("LLM_TEMPERATURE", "nan"), ("OLLAMA_RPM", "9" * 5000)]:
        with patch.dict(os.environ, {name: value}):
            try:
                llm = load_settings(PluginHost.discover(), env_file=None).llm
            except ConfigError as exc:
                assert name in str(exc)
                continue
            problems = dict(getattr(llm, "problems", {}) or {})
            assert any(name in problem for problem in problems.values()), f"{name}={value!r} accepted"


@pytest.mark.parametrize(("name", "value"), [("LLM_CONNECT_TIMEOUT", "1e10"), ("OPENAI_TIMEOUT", "1e308")])
def test_accepted_timeouts_fit_a_socket(name: str, value: str) -> None:
    # httpx hands these to socket.settimeout, which raises OverflowError beyond about 9.2e9 seconds
    with patch.dict(os.environ, {name: value}):
        try:
            llm = load_settings(PluginHost.discover(), env_file=None).llm
        except ConfigError as exc:
            assert name in str(exc)
            return
    if any(name in problem for problem in dict(getattr(llm, "problems", {}) or {}).values()):
        return
    for seconds in [llm.connect_timeout] + [provider.timeout for provider in llm.providers.values()]:
        with socket.socket() as sock:
            sock.settimeout(seconds)
