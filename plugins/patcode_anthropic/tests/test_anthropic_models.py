"""What the plugin knows about Claude models: which take a temperature, aliases, prices."""

from __future__ import annotations

import pytest
from patcode_anthropic.models import DEFAULT_MODEL, PRICES, accepts_temperature, serves

from patcode_core.accounting.prices import PriceBook
from patcode_core.types import Usage


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        ("claude-3-haiku-20240307", True),
        ("claude-3-5-sonnet-latest", True),
        ("claude-3-7-sonnet-20250219", True),
        ("claude-sonnet-4-20250514", True),
        ("claude-opus-4-1-20250805", True),
        ("claude-opus-4-5-20251101", True),
        ("claude-sonnet-4-5", True),
        ("claude-haiku-4-5-20251001", True),
        ("claude-opus-4-6", True),
        ("claude-sonnet-4-6", True),
        # "temperature is deprecated for this model": Opus 4.7 and later, every 5.x model.
        ("claude-opus-4-7", False),
        ("claude-opus-4-8", False),
        ("claude-opus-5", False),
        ("claude-sonnet-5", False),
        ("claude-sonnet-5-5", False),
        ("claude-opus-5-5", False),
        ("claude-haiku-5-5", False),
        ("claude-fable-5-2", False),
        ("claude-mythos-preview", False),
        ("claude-some-future-model", False),  # unknown Claude: omitting is always accepted, sending may not be
        ("acme-coder", True),  # a compatible server's own model
        ("MiniMax-M2", True),
    ],
)
def test_which_models_take_a_temperature(model: str, accepts: bool) -> None:
    assert accepts_temperature(model) is accepts


@pytest.mark.parametrize(
    ("wanted", "listed", "served"),
    [
        ("claude-sonnet-5-5", "claude-sonnet-5-5", True),
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001", True),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", True),
        ("claude-sonnet-5", "claude-sonnet-5-5", False),
        ("claude-opus-4", "claude-opus-4-1-20250805", False),
        ("claude-opus-4", "claude-opus-4-20250514", True),
        ("claude-haiku-4-5", "claude-haiku-4-5-2025100", False),
    ],
)
def test_aliases_are_served_by_their_dated_snapshots(wanted: str, listed: str, served: bool) -> None:
    assert serves(wanted, listed) is served


@pytest.mark.parametrize(
    ("model", "prices"),
    [
        (DEFAULT_MODEL, (2.0, 10.0)),
        ("claude-opus-5-5", (4.0, 20.0)),
        ("claude-opus-5", (5.0, 25.0)),
        ("claude-fable-5-2", (8.0, 40.0)),
        ("claude-fable-5-1", (10.0, 50.0)),
        ("claude-opus-4-7", (5.0, 25.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0)),
        ("claude-opus-4-20250514", (15.0, 75.0)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-sonnet-4-6", (3.0, 15.0)),
        ("claude-haiku-4-5-20251001", (1.0, 5.0)),
        ("claude-3-5-haiku-20241022", (0.80, 4.0)),
        ("claude-haiku-5-5", None),  # two bands by prompt length: unknown unless LLM_PRICES says
    ],
)
def test_prices_by_pattern(model: str, prices: tuple[float, float] | None) -> None:
    price = PriceBook({"anthropic": PRICES}).price("anthropic", model)
    if prices is None:
        assert price is None
        return
    assert price is not None and (price.input_per_million, price.output_per_million) == prices
    assert price.as_of == "2026-11-26"


def test_cost_of_one_answer() -> None:
    book = PriceBook({"anthropic": PRICES})
    assert book.cost("anthropic", DEFAULT_MODEL, Usage(1_000_000, 100_000)) == pytest.approx(2.0 + 1.0)
