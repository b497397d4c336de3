"""Reading a streamed message: Anthropic's named server-sent events as StreamChunks.

From the streaming reference (https://platform.claude.com/docs/en/build-with-claude/streaming,
read 2026-11-26), a stream is ``message_start`` (the message with empty
content and the input tokens), then per content block a
``content_block_start``, its ``content_block_delta`` events and a
``content_block_stop``, then ``message_delta`` (``stop_reason`` and the
cumulative ``usage.output_tokens``) and ``message_stop``. ``ping`` events may
come anywhere; an ``error`` event (``overloaded_error``, ...) may come instead
of the rest. New event types may be added: unknown ones are passed over.

Only ``message_stop`` ends the answer: a body that stops before it yields no
``done`` chunk, and the core treats the answer as cut.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from patcode_anthropic.errors import in_stream_error
from patcode_anthropic.wire import count, extra_of, finish_reason, malformed, refusal_error, usage_of
from patcode_core.plugin import ProviderContext, StreamChunk, Usage

#: Unreadable events a stream may skip (each with a warning) before it counts as broken.
MAX_SKIPPED_EVENTS = 3


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


async def read_stream(
    context: ProviderContext, events: AsyncIterator[tuple[str, str]], model: str, request_id: str | None = None
) -> AsyncIterator[StreamChunk]:
    """Turn ``(event name, data)`` pairs into StreamChunks, ending with ``done`` at ``message_stop``.

    The input tokens go out with the first chunk (from ``message_start``);
    the ``done`` chunk carries the whole count, the finish reason and the
    model. A ``refusal`` stop reason or an ``error`` event raises.
    """
    answering_model: str | None = None
    message: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    skipped = 0
    async for name, data in events:
        if name == "ping":
            continue
        try:
            event = json.loads(data)
        except (json.JSONDecodeError, RecursionError):
            event = None
        if not isinstance(event, dict):
            skipped += 1
            if skipped > MAX_SKIPPED_EVENTS:
                raise malformed(context, f"{skipped} unreadable stream events", model)
            yield StreamChunk(skipped=data[:80])
            continue
        kind = name if name != "message" else str(event.get("type") or "")
        if kind == "error":
            raise in_stream_error(context, event, model, request_id)
        if kind == "message_start":
            start = _mapping(event.get("message"))
            if isinstance(start.get("model"), str):
                answering_model = start["model"]
            message.update({key: start[key] for key in ("id", "stop_reason", "stop_sequence") if start.get(key) is not None})
            usage.update({key: value for key, value in _mapping(start.get("usage")).items() if value is not None})
            # output_tokens here is a placeholder (1): the real count comes with message_delta.
            yield StreamChunk(usage=Usage(count(usage.get("input_tokens")), None), model=answering_model)
        elif kind == "content_block_start":
            block = _mapping(event.get("content_block"))
            if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
                yield StreamChunk(text=block["text"])
        elif kind == "content_block_delta":
            delta = _mapping(event.get("delta"))
            # text_delta is the answer; thinking_delta, signature_delta, input_json_delta are not.
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                yield StreamChunk(text=delta["text"])
        elif kind == "message_delta":
            delta = _mapping(event.get("delta"))
            message.update({key: delta[key] for key in ("stop_reason", "stop_sequence") if delta.get(key) is not None})
            usage.update({key: value for key, value in _mapping(event.get("usage")).items() if value is not None})
            if delta.get("stop_reason") == "refusal":
                raise refusal_error(context, delta.get("stop_details") or event.get("stop_details"), model)
        elif kind == "message_stop":
            yield StreamChunk(
                finish_reason=finish_reason(message.get("stop_reason")),
                usage=usage_of(usage),
                model=answering_model,
                done=True,
                extra=extra_of(message, usage),
            )
            return
        # content_block_stop and event types added later say nothing PatCode needs.
