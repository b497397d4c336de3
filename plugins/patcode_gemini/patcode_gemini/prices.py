"""USD per million tokens on the Gemini API's paid tier (Standard), by model pattern.

Source: https://ai.google.dev/gemini-api/docs/pricing, as transcribed verbatim on
2026-10-07 (api-evangelist/deepmind ``plans/deepmind-plans-pricing.yml``); the
2.5 figures the transcription leaves out (2.5 Flash output, 2.5 Flash-Lite
input, 2.5 Pro output) are the page's long-standing ones as quoted by
secondary sources citing it (morphllm.com, geotoolbox.ai, 2026).

What these numbers cannot say, so that costs stay honest:

- output prices include thinking tokens, which is why the plugin counts
  ``thoughtsTokenCount`` as output (:mod:`patcode_gemini.wire`);
- Pro models charge more for prompts over 200k tokens ($4.00 / $18.00 for
  3.1 Pro, $2.50 / $15.00 for 2.5 Pro): such answers cost more than shown;
- cached prompt tokens (``cachedContentTokenCount``, implicit caching) are
  billed at a fraction of the input price: such answers cost less than shown;
- the free tier costs nothing: with a free key, set ``LLM_PRICES=gemini/*=0:0``;
- a model not listed here has an unknown cost (never 0): ``LLM_PRICES`` adds it.

Patterns are shell-style and the core picks the longest that matches, so
``gemini-3.5-flash-lite-preview-09-2026`` gets Flash-Lite's price, not Flash's.
"""

from __future__ import annotations

from datetime import date

from patcode_core.plugin import Price

READ_ON = "2026-10-07"
#: Gemini 3.8 Flash costs $0.75 / $3.75 "through December 31, 2026", and $1.50 / $7.50 "starting January 1, 2027".
FLASH_38_NEW_PRICE_FROM = date(2027, 1, 1)


def prices(today: date | None = None) -> dict[str, Price]:
    """The price table for ``ProviderInfo.prices``, as it stands on ``today``."""
    today = today or date.today()
    flash_38 = Price(0.75, 3.75, READ_ON) if today < FLASH_38_NEW_PRICE_FROM else Price(1.50, 7.50, READ_ON)
    return {
        "gemini-3.8-flash*": flash_38,
        "gemini-3.5-flash*": Price(1.50, 9.00, READ_ON),
        "gemini-3.5-flash-lite*": Price(0.30, 2.50, READ_ON),
        "gemini-3.1-pro*": Price(2.00, 12.00, READ_ON),  # prompts <= 200k tokens
        "gemini-2.5-pro*": Price(1.25, 10.00, READ_ON),  # prompts <= 200k tokens; shut down 2026-12-01
        "gemini-2.5-flash*": Price(0.30, 2.50, READ_ON),  # shut down 2026-12-01
        "gemini-2.5-flash-lite*": Price(0.10, 0.40, READ_ON),
    }
