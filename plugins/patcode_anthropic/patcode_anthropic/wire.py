"""The Messages API on the wire: request headers and body, and the message object that comes back.

From the API reference (https://platform.claude.com/docs/en/api/messages,
read 2026-11-26)::

    POST /v1/messages
    x-api-key: $ANTHROPIC_API_KEY
    anthropic-version: 2023-06-01
    content-type: application/json

    {"model": "claude-sonnet-5-5", "max_tokens": 1024, "system": "...",
     "messages": [{"role": "user", "content": "Hello, world"}]}

    {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
     "content": [{"type": "text", "text": "Hi! My name is Claude."}],
     "model": "claude-sonnet-4-5-20250929", "stop_reason": "end_turn", "stop_sequence": null,
     "usage": {"input_tokens": 2095, "output_tokens": 503}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patcode_anthropic.errors import classify, parse_error
from patcode_anthropic.messages import MESSAGES
from patcode_anthropic.models import accepts_temperature
from patcode_anthropic.settings import AnthropicSettings
from patcode_core.plugin import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    CompletionRequest,
    ErrorKind,
    Message,
    ProviderContext,
    ProviderError,
    ProviderReply,
    Usage,
)

#: The API version every request names (https://platform.claude.com/docs/en/api/versioning):
#: still the current one; new features come as ``anthropic-beta`` headers, which PatCode sends none of.
API_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"

#: Anthropic's temperature goes from 0 to 1; PatCode's (``LLM_TEMPERATURE``) from 0 to 2.
MAX_TEMPERATURE = 1.0

#: ``stop_reason`` in PatCode's finish words. ``pause_turn`` (a server-tool loop stopped before
#: finishing its turn) and ``model_context_window_exceeded`` leave an unfinished answer: ``length``
#: is the word for "not whole" (shown as truncated, never cached). ``refusal`` never gets here:
#: it is a CONTENT_FILTER error (:func:`refusal_error`). A future value passes through unchanged.
FINISH_REASONS = {
    "end_turn": FINISH_STOP,
    "stop_sequence": FINISH_STOP,
    "max_tokens": FINISH_LENGTH,
    "model_context_window_exceeded": FINISH_LENGTH,
    "pause_turn": FINISH_LENGTH,
    "tool_use": FINISH_TOOL_CALLS,
    "refusal": FINISH_CONTENT_FILTER,
}
#: Stop reasons after which an empty answer means the token budget ran out.
_CUT_SHORT = ("max_tokens", "model_context_window_exceeded")
_COUNTS = ("input_tokens", "output_tokens")


def request_headers(settings: AnthropicSettings) -> dict[str, str]:
    """The headers of every request; the key is read here, per request, and never kept."""
    headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
    key = settings.api_key_value()
    if key:
        headers["x-api-key"] = key
    return headers


def split_conversation(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, str]]]:
    """(``system``, ``messages``) as the Messages API takes them.

    System messages, wherever they are, become the top-level ``system`` (joined
    by a blank line): the API has no system role. Consecutive turns of the same
    role are joined so that user and assistant alternate. A last assistant
    message is a prefill, which the model continues; the API refuses one that
    ends in white space, so it is trimmed at the end.
    """
    system = [message.content for message in messages if message.role == "system" and message.content.strip()]
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    if turns and turns[-1]["role"] == "assistant":
        turns[-1]["content"] = turns[-1]["content"].rstrip()
    return ("\n\n".join(system) if system else None), turns


def sends_temperature(settings: AnthropicSettings, model: str) -> bool:
    """Whether this request carries a ``temperature`` (``ANTHROPIC_SEND_TEMPERATURE``)."""
    if settings.send_temperature == "auto":
        return accepts_temperature(model)
    return settings.send_temperature == "always"


def message_body(request: CompletionRequest, settings: AnthropicSettings, *, stream: bool = False) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages``; PatCode's temperature is cut to Anthropic's 0..1."""
    system, turns = split_conversation(request.messages)
    body: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens, "messages": turns}
    if system is not None:
        body["system"] = system
    if sends_temperature(settings, request.model):
        body["temperature"] = min(max(request.temperature, 0.0), MAX_TEMPERATURE)
    if stream:
        body["stream"] = True
    return body


def finish_reason(stop_reason: object) -> str | None:
    """PatCode's finish word for a ``stop_reason``."""
    if not isinstance(stop_reason, str):
        return None
    return FINISH_REASONS.get(stop_reason, stop_reason)


def count(value: object) -> int | None:
    """A token count, if ``value`` is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_of(body: object) -> Usage:
    """``usage.input_tokens`` / ``output_tokens`` (input excludes the cache reads and writes, billed apart)."""
    if not isinstance(body, Mapping):
        return Usage()
    return Usage(count(body.get("input_tokens")), count(body.get("output_tokens")))


def usage_details(body: object) -> dict[str, Any]:
    """The other figures of ``usage``: cache writes and reads, service tier, server tool use."""
    if not isinstance(body, Mapping):
        return {}
    return {key: value for key, value in body.items() if key not in _COUNTS and value is not None}


def refusal_error(context: ProviderContext, details: object, model: str) -> ProviderError:
    """``stop_reason: "refusal"``: a CONTENT_FILTER error with Anthropic's explanation (``stop_details``)."""
    explanation = category = None
    if isinstance(details, Mapping):
        explanation, category = details.get("explanation"), details.get("category")
    detail = str(explanation or "refusal")[:300]
    if category:
        detail += f" ({category})"
    return context.error(ErrorKind.CONTENT_FILTER, MESSAGES.t("refusal", detail=detail), MESSAGES.t("rephrase"), model=model)


def malformed(context: ProviderContext, detail: str, model: str, suggestion: str | None = None) -> ProviderError:
    """A 200 answer PatCode cannot use (retried, then the next provider)."""
    return context.error(
        ErrorKind.MALFORMED_RESPONSE, MESSAGES.t("malformed", detail=detail), suggestion or MESSAGES.t("retry_later"), model=model
    )


def empty_answer(context: ProviderContext, stop_reason: object, model: str) -> ProviderError:
    """A message with no text: out of tokens (a model that thinks first spends them thinking), or broken."""
    cut_short = stop_reason in _CUT_SHORT
    suggestion = MESSAGES.t("raise_max_tokens") if cut_short else MESSAGES.t("retry_later")
    return malformed(context, MESSAGES.t("no_text", stop_reason=stop_reason), model, suggestion)


def text_of(content: list[Any]) -> str:
    """The answer's text: its ``text`` blocks in order (``thinking`` and other blocks are not the answer)."""
    return "".join(
        block["text"]
        for block in content
        if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str)
    )


def extra_of(message: Mapping[str, Any], usage: object) -> dict[str, Any]:
    """What the answer says besides text and counts: its id, the raw stop reason, the usage details."""
    extra: dict[str, Any] = {}
    if isinstance(message.get("id"), str):
        extra["id"] = message["id"]
    if isinstance(message.get("stop_reason"), str):
        extra["stop_reason"] = message["stop_reason"]
    if message.get("stop_sequence") is not None:
        extra["stop_sequence"] = message["stop_sequence"]
    details = usage_details(usage)
    if details:
        extra["usage"] = details
    return extra


def parse_message(context: ProviderContext, body: object, model: str) -> ProviderReply:
    """A 200 message object as a ProviderReply; a refusal, an error object or no text raise."""
    if not isinstance(body, Mapping):
        raise malformed(context, "not a JSON object", model)
    error = parse_error(body)
    if error is not None and body.get("type") == "error":
        raise classify(context, error, model, status=200)  # an error object sent with status 200
    content = body.get("content")
    if not isinstance(content, list):
        raise malformed(context, "no content", model)
    stop_reason = body.get("stop_reason")
    if stop_reason == "refusal":
        raise refusal_error(context, body.get("stop_details"), model)
    text = text_of(content)
    if not text:
        raise empty_answer(context, stop_reason, model)
    return ProviderReply(
        text=text,
        model=body["model"] if isinstance(body.get("model"), str) else model,
        finish_reason=finish_reason(stop_reason),
        usage=usage_of(body.get("usage")),
        extra=extra_of(body, body.get("usage")),
    )
