"""What the plugin knows about Claude models: the default, their prices, which take a temperature.

Everything here was read from Anthropic's documentation on 2026-11-26:

- the models overview and the per-model pages
  (https://platform.claude.com/docs/en/about-claude/models/overview,
  https://platform.claude.com/docs/en/models/<model>/overview), whose
  current lineup is Claude Fable 5.2/5.1, Opus 5.5, Sonnet 5.5 ("the best
  combination of speed and intelligence") and Haiku 5.5/4.5;
- the pricing page (https://platform.claude.com/docs/en/about-claude/pricing);
- the Sonnet 5 and Opus 4.7 migration notes: from Claude Opus 4.7 on, and in
  every 5.x model, a non-default ``temperature`` (or ``top_p``/``top_k``) is
  a 400 ``invalid_request_error``.
"""

from __future__ import annotations

import re

from patcode_core.plugin import Price

#: Claude Sonnet 5.5: the Sonnet the models overview lists as current on 2026-11-26. It has no
#: dated snapshot; its ID and its alias are the same string.
DEFAULT_MODEL = "claude-sonnet-5-5"

#: When the prices below were read from the pricing page and the model pages.
PRICES_AS_OF = "2026-11-26"

#: USD per million base input / output tokens. Patterns cover dated snapshots
#: (``claude-haiku-4-5-20251001``); the core picks the longest pattern that matches, so
#: ``claude-opus-4-5*`` wins over ``claude-opus-4*`` for Opus 4.5. Cache writes and reads have
#: their own prices, which PatCode does not bill: PatCode sends no ``cache_control``, and the
#: counts Anthropic reports are kept in the answer's ``extra["usage"]``. Claude Haiku 5.5 has two
#: bands (its price depends on the prompt's length) and is left unpriced: its cost shows as
#: unknown unless ``LLM_PRICES=anthropic/claude-haiku-5-5=<in>:<out>`` says it.
PRICES: dict[str, Price] = {
    "claude-fable-5-2*": Price(8.0, 40.0, PRICES_AS_OF),
    "claude-fable-5-1*": Price(10.0, 50.0, PRICES_AS_OF),
    "claude-fable-5": Price(10.0, 50.0, PRICES_AS_OF),
    "claude-mythos-5-1*": Price(10.0, 50.0, PRICES_AS_OF),
    "claude-mythos-5": Price(10.0, 50.0, PRICES_AS_OF),
    "claude-opus-5-5*": Price(4.0, 20.0, PRICES_AS_OF),
    "claude-opus-5": Price(5.0, 25.0, PRICES_AS_OF),
    "claude-sonnet-5-5*": Price(2.0, 10.0, PRICES_AS_OF),
    "claude-sonnet-5": Price(2.0, 10.0, PRICES_AS_OF),
    "claude-opus-4-8*": Price(5.0, 25.0, PRICES_AS_OF),
    "claude-opus-4-7*": Price(5.0, 25.0, PRICES_AS_OF),
    "claude-opus-4-6*": Price(5.0, 25.0, PRICES_AS_OF),
    "claude-opus-4-5*": Price(5.0, 25.0, PRICES_AS_OF),
    "claude-opus-4*": Price(15.0, 75.0, PRICES_AS_OF),  # Opus 4 and 4.1
    "claude-sonnet-4*": Price(3.0, 15.0, PRICES_AS_OF),  # Sonnet 4, 4.5, 4.6
    "claude-haiku-4-5*": Price(1.0, 5.0, PRICES_AS_OF),
    "claude-3-7-sonnet*": Price(3.0, 15.0, PRICES_AS_OF),
    "claude-3-5-haiku*": Price(0.80, 4.0, PRICES_AS_OF),
    "claude-3-haiku*": Price(0.25, 1.25, PRICES_AS_OF),
}

#: Claude 4.x by family and minor version: ``claude-opus-4-6``, ``claude-sonnet-4-20250514``, ``claude-opus-4-1-20250805``.
_CLAUDE_4 = re.compile(r"claude-(?:opus|sonnet|haiku)-4(?:-(\d{1,2}))?(?:-\d{8})?(?:-latest)?")
#: Claude 4.x models from this minor version on take no temperature (Opus 4.7 was the first).
_FIRST_4X_WITHOUT_SAMPLING = 7
#: Generations before Claude 4 all take one (``claude-3-5-sonnet-20241022``, ``claude-3-haiku-20240307``).
_OLDER_GENERATIONS = ("claude-3", "claude-2", "claude-instant")


def accepts_temperature(model: str) -> bool:
    """Whether ``model`` accepts a ``temperature`` other than its default.

    Claude 3.x and 4.x up to 4.6 do; Opus 4.7 and later, every 5.x model and
    every Claude model this plugin does not know yet do not (sending it is a
    400, omitting it never is). A model that is not named ``claude-*`` is a
    compatible server's own, which takes one.
    """
    name = model.strip().lower()
    if not name.startswith("claude-"):
        return True
    if name.startswith(_OLDER_GENERATIONS):
        return True
    match = _CLAUDE_4.fullmatch(name)
    if match is None:
        return False
    minor = int(match.group(1)) if match.group(1) else 0
    return minor < _FIRST_4X_WITHOUT_SAMPLING


_DATED = re.compile(r"-\d{8}")


def serves(wanted: str, listed: str) -> bool:
    """Whether the listed model id ``listed`` is the model ``wanted`` names.

    The same id, or ``wanted`` as an alias of a dated snapshot:
    ``claude-haiku-4-5`` (or ``claude-3-5-haiku-latest``) is served by
    ``claude-haiku-4-5-20251001``. Only a date may follow: ``claude-sonnet-5``
    is not served by ``claude-sonnet-5-5``.
    """
    if wanted == listed:
        return True
    base = wanted.removesuffix("-latest")
    return listed.startswith(base) and _DATED.fullmatch(listed[len(base) :]) is not None
