"""Can Anthropic answer now? Key and model checked with ``GET /v1/models``, which spends no tokens.

The Models API (https://platform.claude.com/docs/en/api/models/list, read
2026-11-26) lists the models the key can use, newest first, 20 per page by
default and up to 1000 with ``limit``::

    {"data": [{"type": "model", "id": "claude-sonnet-4-5-20250929",
               "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"}],
     "has_more": false, "first_id": "...", "last_id": "..."}

It lists ids; an alias such as ``claude-haiku-4-5`` is served by its dated
snapshot (``claude-haiku-4-5-20251001``), see :func:`patcode_anthropic.models.serves`.
"""

from __future__ import annotations

import json

import httpx

from patcode_anthropic.errors import error_from_response
from patcode_anthropic.messages import MESSAGES
from patcode_anthropic.models import serves
from patcode_anthropic.wire import MODELS_PATH, request_headers
from patcode_core.plugin import Availability, ErrorKind, ProviderContext

#: How long the check may take, at most.
AVAILABILITY_TIMEOUT = 5.0
#: The largest page the Models API gives: every model in one request.
PAGE_SIZE = 1000
#: Model ids a "not listed" message shows at most.
LISTED_SHOWN = 5


def _listed(models: tuple[str, ...]) -> str:
    shown = ", ".join(f"'{model[:80]}'" for model in models[:LISTED_SHOWN])
    return shown + (f" (+{len(models) - LISTED_SHOWN})" if len(models) > LISTED_SHOWN else "")


async def check(context: ProviderContext) -> Availability:
    """Not configured without a key (no network); else the key and the model, from the model list."""
    if not context.configured:
        return Availability.from_error(context.not_configured_error())
    settings = context.settings
    model = settings.model
    try:
        response = await context.client.get(
            MODELS_PATH,
            params={"limit": PAGE_SIZE},
            headers=request_headers(settings),
            timeout=min(AVAILABILITY_TIMEOUT, settings.timeout),
        )
    except httpx.TransportError as exc:
        return Availability.from_error(context.transport_error(exc))
    if response.status_code == 404 and not settings.official:
        # A compatible server may serve /v1/messages without /v1/models: nothing to check cheaply.
        return Availability(True, context.redact(MESSAGES.t("models_unchecked", url=settings.base_url)))
    if response.status_code != 200:
        return Availability.from_error(error_from_response(context, response, model))
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        detail = MESSAGES.t("malformed", detail=f"GET {MODELS_PATH}")
        return Availability(False, detail, MESSAGES.t("retry_later"), ErrorKind.MALFORMED_RESPONSE)
    models = tuple(str(item["id"]) for item in data if isinstance(item, dict) and isinstance(item.get("id"), str))
    if any(serves(model, listed) for listed in models) or body.get("has_more") is True:
        return Availability(True, models=models)
    if not settings.official:
        return Availability(True, MESSAGES.t("unlisted_on_compatible", model=model, listed=_listed(models)), models=models)
    return Availability(
        False,
        MESSAGES.t("model_not_listed", model=model, listed=_listed(models)),
        MESSAGES.t("choose_model", var=context.var("model")),
        ErrorKind.MODEL_NOT_FOUND,
        models,
    )
