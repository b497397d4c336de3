"""PatCode's answers in the chat-completions wire: ``chat.completion`` and ``chat.completion.chunk``.

The ``model`` field names who answered as ``provider/model``, an id that
``/v1/models`` lists and that a client can send back to ask for that route.
Token counts a provider did not give are ``null``, never 0.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from patcode_core.types import FINISH_CONTENT_FILTER, FINISH_LENGTH, FINISH_STOP, FINISH_TOOL_CALLS, CompletionResult, Usage

_FINISH = {FINISH_STOP, FINISH_LENGTH, FINISH_CONTENT_FILTER, FINISH_TOOL_CALLS}


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id."""
    return "chatcmpl-" + os.urandom(12).hex()


def answered_by(provider: str, model: str) -> str:
    """The ``model`` a response names: ``provider/model``."""
    return f"{provider}/{model}"


def usage_body(usage: Usage) -> dict[str, int] | None:
    """the chat-completions API's ``usage``, or ``None`` when the provider did not count both sides."""
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def finish_reason(result: CompletionResult) -> str:
    """The ``finish_reason``: the provider's when it is one of the chat-completions API's words, else ``stop`` (a whole answer)."""
    return result.finish_reason if result.finish_reason in _FINISH else FINISH_STOP


def completion_body(result: CompletionResult, identifier: str | None = None) -> dict[str, Any]:
    """A whole ``chat.completion``."""
    return {
        "id": identifier or completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answered_by(result.provider, result.model),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage_body(result.usage),
        "system_fingerprint": None,
    }


def _event(body: dict[str, Any]) -> bytes:
    """One SSE ``data:`` event holding ``body`` as compact JSON."""
    return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace") + b"\n\n"


class ChunkWriter:
    """The SSE lines of one streamed answer, each ``data: {json}\\n\\n``, and the closing ``data: [DONE]``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None, with_usage: bool = False) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage if with_usage else None
        return _event(chunk)

    def delta(self, text: str, role: bool = False) -> bytes:
        """A piece of text (the first one also says the role)."""
        delta: dict[str, Any] = {"role": "assistant", "content": text} if role else {"content": text}
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def end(self, result: CompletionResult) -> bytes:
        """The closing chunk with ``finish_reason``, the usage chunk when asked for, and ``[DONE]``."""
        lines = self._chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason(result)}])
        if self.include_usage:
            lines += self._chunk([], usage_body(result.usage), with_usage=True)
        return lines + b"data: [DONE]\n\n"

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        """An error event: the chat-completions API's error body on a ``data:`` line (the official SDKs raise it); no ``[DONE]`` follows."""
        return _event(body)
