"""The one door for plugin authors: everything a provider plugin needs, and nothing else.

A plugin imports only from here::

    from patcode_core.plugin import (
        CompletionRequest, ErrorKind, Price, ProviderContext, ProviderInfo,
        ProviderReply, ProviderSettings, Usage, hookimpl,
    )

Everything else in ``patcode_core`` is the host's machinery and may change
between versions; what is exported here changes only with ``__version__``
(``.. versionadded::`` notes in ``docs/plugins.md``). A plugin may require a
version in its ``pyproject.toml``: ``dependencies = ["patcode-core>=0.2"]``.

- hooks: :data:`hookimpl` (the four hooks are documented in ``docs/plugins.md``);
- what a plugin describes: :class:`ProviderInfo`, :class:`ProviderSettings` (and
  pydantic-settings' ``SettingsConfigDict`` for its ``env_prefix``),
  :class:`Price` (``ANY_MODEL``, or a pattern such as ``"claude-sonnet-4*"``),
  :class:`RateLimitHeaders`;
- what it receives and returns: :class:`ProviderContext`,
  :class:`CompletionRequest`, :class:`Message`, :class:`ProviderReply`,
  :class:`StreamChunk`, :class:`Usage`, :class:`Availability`, and the
  finish-reason words ``FINISH_*``;
- errors: :class:`ProviderError` and :class:`ErrorKind` (which kinds fall back and
  which are retried is the table in ``docs/errores.md``);
- helpers: :mod:`chat_completions` (a whole plugin for a chat-completions
  server), :func:`sse_data` / :func:`sse_events` (server-sent events),
  :func:`parse_duration` (``1m2.5s``), :func:`retry_after_seconds` and
  :func:`rate_limit_wait` (how long a 429 asks to wait), :data:`MAX_SECONDS`
  (the longest time setting), :class:`Catalogue` (the plugin's own messages,
  Spanish and English) and :func:`core_message` (the core's shared texts, such
  as ``core_message("suggest.retry_later")``, in the user's language).
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from patcode_core import __version__
from patcode_core.context import ProviderContext
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.hookspecs import hookimpl
from patcode_core.i18n import Catalogue
from patcode_core.i18n import t as core_message
from patcode_core.provider_settings import MAX_SECONDS, ProviderSettings
from patcode_core.routing.durations import parse_duration
from patcode_core.routing.ratelimit import RateLimitHeaders
from patcode_core.types import (
    ANY_MODEL,
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    Availability,
    CompletionRequest,
    Message,
    Price,
    ProviderInfo,
    ProviderReply,
    StreamChunk,
    Usage,
)
from patcode_core.wire import chat_completions
from patcode_core.wire.sse import sse_data, sse_events
from patcode_core.wire.transport import rate_limit_wait, retry_after_seconds

__all__ = [
    "ANY_MODEL",
    "MAX_SECONDS",
    "FINISH_CONTENT_FILTER",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "FINISH_TOOL_CALLS",
    "Availability",
    "Catalogue",
    "CompletionRequest",
    "ErrorKind",
    "Message",
    "Price",
    "ProviderContext",
    "ProviderError",
    "ProviderInfo",
    "ProviderReply",
    "ProviderSettings",
    "RateLimitHeaders",
    "SettingsConfigDict",
    "StreamChunk",
    "Usage",
    "__version__",
    "chat_completions",
    "core_message",
    "hookimpl",
    "parse_duration",
    "rate_limit_wait",
    "retry_after_seconds",
    "sse_data",
    "sse_events",
]
