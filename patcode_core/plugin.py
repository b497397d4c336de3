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
  :func:`parse_duration` (``1m2.5s``), :func:`retry_after_seconds`,
  :class:`Catalogue` (the plugin's own messages, Spanish and English).
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from patcode_core import __version__, chat_completions
from patcode_core.context import ProviderContext
from patcode_core.durations import parse_duration
from patcode_core.errors import ErrorKind, ProviderError
from patcode_core.hookspecs import hookimpl
from patcode_core.i18n import Catalogue
from patcode_core.provider_settings import ProviderSettings
from patcode_core.ratelimit import RateLimitHeaders
from patcode_core.sse import sse_data, sse_events
from patcode_core.transport import retry_after_seconds
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

__all__ = [
    "ANY_MODEL",
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
    "hookimpl",
    "parse_duration",
    "retry_after_seconds",
    "sse_data",
    "sse_events",
]
