"""Prices per model, and the cost of an answer: USD per million input and output tokens.

Each plugin publishes the prices it knows through ``ProviderInfo.prices``
(with the date they were taken); ``LLM_PRICES`` overrides or adds some:
``acme/big-model=0.15:0.75,local/*=0:0`` (provider,
``/``, model, ``=``, input, ``:``, output). A model with no known price has
cost ``None`` ("unknown"), never 0; a provider may price every model with
``"*"`` (a local server costs 0).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping

from patcode_core.types import ANY_MODEL, Price, Usage

#: Prices a :class:`PriceBook` remembers, by provider and model (past it, further models are looked up each time).
FOUND_KEPT = 1024


def parse_price_overrides(text: str) -> dict[tuple[str, str], Price]:
    """``LLM_PRICES`` as ``{(provider, model): Price}``.

    :raises ValueError: naming the bad entry: not ``provider/model=input:output``,
        or an amount that is negative, ``inf`` or ``nan``.
    """
    prices: dict[tuple[str, str], Price] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        route, _, amounts = entry.partition("=")
        provider, _, model = route.strip().partition("/")
        input_text, _, output_text = amounts.partition(":")
        try:
            price = Price(float(input_text), float(output_text), "LLM_PRICES")
        except ValueError:
            raise ValueError(entry) from None
        amounts_ok = all(
            math.isfinite(amount) and amount >= 0 for amount in (price.input_per_million, price.output_per_million)
        )
        if not provider.strip() or not model.strip() or not amounts_ok:
            raise ValueError(entry)
        prices[(provider.strip().lower(), model.strip())] = price
    return prices


def _match(table: Mapping[str, Price], model: str) -> Price | None:
    """``table``'s price for ``model``: the exact name, else the longest matching pattern (``*`` last)."""
    exact = table.get(model)
    if exact is not None:
        return exact
    patterns = sorted((name for name in table if any(char in name for char in "*?[")), key=len, reverse=True)
    return next((table[pattern] for pattern in patterns if fnmatch.fnmatchcase(model, pattern)), None)


class PriceBook:
    """Every known price: the plugins' tables with the user's overrides on top."""

    def __init__(
        self, published: Mapping[str, Mapping[str, Price]], overrides: Mapping[tuple[str, str], Price] | None = None
    ) -> None:
        self._published = {provider: dict(table) for provider, table in published.items()}
        self._overrides = dict(overrides or {})
        # Both tables are private copies that never change, so each answer is looked up once: pricing
        # every answer by pattern (sorting and matching the table) cost ~4 µs a call.
        self._found: dict[tuple[str, str], Price | None] = {}

    def price(self, provider: str, model: str) -> Price | None:
        """The price of ``model`` at ``provider``, or ``None`` when nobody said.

        The user's overrides come first, then the plugin's table. In each, the
        exact model name wins, then the most specific pattern that matches it
        (``claude-sonnet-4*`` for ``claude-sonnet-4-20250514``: shell-style,
        the longest pattern first), then ``*``.
        """
        key = (provider, model)
        try:
            return self._found[key]
        except KeyError:
            pass
        overrides = {name: price for (owner, name), price in self._overrides.items() if owner == provider}
        found = _match(overrides, model) or _match(self._published.get(provider, {}), model)
        if len(self._found) < FOUND_KEPT:  # the models a server answers with could be unbounded
            self._found[key] = found
        return found

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        """USD for one answer, or ``None`` when the price or the token counts are unknown."""
        price = self.price(provider, model)
        return price.cost(usage) if price is not None else None


#: Price and ANY_MODEL live in patcode_core.types (values that travel); they stay importable from here.
__all__ = ["ANY_MODEL", "Price", "PriceBook", "parse_price_overrides"]
