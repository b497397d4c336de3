"""the chat-completions API's ``POST /v1/chat/completions`` body, read and checked: what the manager is asked to do.

Only what PatCode can honour is accepted. A parameter that would change the
answer and that the providers behind PatCode are not given (``tools``,
``stop``, ``response_format``...) is refused with a 400 naming it, never
dropped in silence; a few that change nothing at their neutral value
(``top_p: 1``, ``presence_penalty: 0``) and bookkeeping ones (``user``,
``metadata``) are accepted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from patcode_core.config import FallbackEntry
from patcode_core.gateway.api_errors import ApiError, bad_request
from patcode_core.i18n import t
from patcode_core.types import Message

#: Roles the gateway forwards; ``developer`` is the API's newer name for ``system``.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: Accepted (type-checked) and not forwarded: they never change an answer.
IGNORED: dict[str, type | tuple[type, ...]] = {
    "user": str, "metadata": dict, "store": bool, "seed": int, "service_tier": str, "parallel_tool_calls": bool,
    "prompt_cache_key": str, "safety_identifier": str,
}
#: Accepted only at the value that changes nothing.
NEUTRAL = {
    "top_p": (1, 1.0, None),
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "logprobs": (False, None),
    "top_logprobs": (None,),
    "stop": (None, [], ""),
    "logit_bias": (None, {}),
    "tools": (None, []),
    "tool_choice": (None, "none", "auto"),
}
KNOWN = {"model", "messages", "stream", "stream_options", "temperature", "max_tokens", "max_completion_tokens", "n"}
MAX_TOKENS = 10_000_000


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: ``auto`` (the fallback order), a provider, or a provider and model."""

    provider: str | None = None
    model: str | None = None
    #: The ``model`` field as sent (a bare model name is looked up among the providers' models).
    raw: str = "auto"

    @property
    def name(self) -> str:
        return str(FallbackEntry(self.provider, self.model)) if self.provider else "auto"


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat-completions request, checked."""

    route: Route
    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    max_tokens: int | None = None


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or a 400 that says it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad_request(t("gateway.not_json")) from None


def _check_ignored(body: dict[str, Any], name: str) -> None:
    """A field that changes nothing must still have its documented type (``metadata``: strings to strings)."""
    value = body[name]
    if value is None:
        return
    wanted = IGNORED[name]
    fits = isinstance(value, wanted) and not (isinstance(value, bool) and wanted is not bool)
    if fits and name == "metadata":
        fits = all(isinstance(key, str) and isinstance(item, str) for key, item in value.items())
    if not fits:
        raise bad_request(t("gateway.bad_type", param=name), name)


def _is_neutral(value: Any, allowed: tuple[Any, ...]) -> bool:
    """``value`` is one of ``allowed`` (``True`` is not ``1`` here, nor ``False`` ``0``)."""
    for neutral in allowed:
        if neutral is None or isinstance(neutral, bool) or isinstance(value, bool):
            if value is neutral:
                return True
        elif value == neutral:
            return True
    return False


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for index, part in enumerate(content):
            where = f"{param}[{index}]"
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(t("gateway.only_text_parts"), where)
            pieces.append(part["text"])
        return "".join(pieces)
    raise bad_request(t("gateway.bad_content"), param)


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise bad_request(t("gateway.messages_required"), "messages")
    messages = []
    for index, item in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise bad_request(t("gateway.bad_message"), where)
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(t("gateway.bad_role", role=str(role)[:40], roles=", ".join(ROLES)), f"{where}.role")
        extra = set(item) - {"role", "content", "name"}
        if "name" in item and not isinstance(item["name"], str):
            raise bad_request(t("gateway.bad_type", param="name"), f"{where}.name")
        if extra:
            raise bad_request(t("gateway.unsupported", param=sorted(extra)[0]), f"{where}.{sorted(extra)[0]}")
        messages.append(Message(ROLES[role], _text(item.get("content"), f"{where}.content")))
    return tuple(messages)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise bad_request(t("gateway.bad_number", param=name, low=f"{low:g}", high=f"{high:g}"), name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # 205.0 is an integer to JSON Schema and to the API's reference
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(t("gateway.bad_integer", param=name, low=low, high=high), name)
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(t("gateway.bad_flag", param=name), name)
    return value


def parse_route(value: Any) -> Route:
    """``auto``, ``provider`` or ``provider/model`` (split at the first ``/``); the names are checked by the app."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(t("gateway.model_required"), "model")
    text = value.strip()
    if text == "auto":
        return Route()
    provider, _, model = text.partition("/")
    return Route(provider.strip().lower(), model.strip() or None, text)


def parse_chat(body: Any) -> ChatCall:
    """Check a decoded body; every problem is a 400 naming the field."""
    if not isinstance(body, dict):
        raise bad_request(t("gateway.body_not_object"))
    for name in body:
        if name in KNOWN:
            continue
        if name in IGNORED:
            _check_ignored(body, name)
            continue
        if name in NEUTRAL:
            if not _is_neutral(body[name], NEUTRAL[name]):
                raise bad_request(t("gateway.unsupported", param=name), name, "unsupported_parameter")
            continue
        raise bad_request(t("gateway.unknown_param", param=str(name)[:60]), str(name)[:60], "unknown_parameter")
    _integer(body, "n", 1, 1)
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise bad_request(t("gateway.stream_options_without_stream"), "stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
            raise bad_request(t("gateway.bad_stream_options"), "stream_options")
        include_usage = _flag(options, "include_usage")
        _flag(options, "include_obfuscation")
    limit = _integer(body, "max_completion_tokens", 1, MAX_TOKENS)
    legacy = _integer(body, "max_tokens", 1, MAX_TOKENS)
    return ChatCall(
        route=parse_route(body.get("model")),
        messages=_messages(body.get("messages")),
        stream=stream,
        include_usage=include_usage,
        temperature=_number(body, "temperature", 0.0, 2.0),
        max_tokens=limit if limit is not None else legacy,
    )


__all__ = ["ApiError", "ChatCall", "Route", "parse_chat", "parse_json", "parse_route"]
