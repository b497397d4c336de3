"""The contract between PatCode and its provider plugins.

A plugin is a module (or object) with functions marked ``@hookimpl``, exposed
through an entry point in the ``patcode.providers`` group::

    [project.entry-points."patcode.providers"]
    acme = "patcode_acme"

A hook implementation may accept fewer arguments than its spec, so specs can
grow without breaking old plugins. ``provider_available`` and
``provider_complete`` may be ``async def`` (preferred) or plain functions;
plain ones are run in a worker thread so they never block the event loop.
The core only calls them with ``provider`` set to a name the plugin returned
from ``provider_info``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from patcode_core.context import ProviderContext
    from patcode_core.types import Availability, CompletionRequest, ProviderInfo, ProviderReply, StreamChunk

PROJECT_NAME = "patcode"
ENTRY_POINT_GROUP = "patcode.providers"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def provider_info() -> ProviderInfo | list[ProviderInfo]:
    """Describe the provider(s) this plugin brings.

    Called once when the plugin is loaded. It must not touch the network.

    :return: a :class:`~patcode_core.types.ProviderInfo` (or a list of them)
        naming the provider, its settings class and the variable that holds
        its key.
    """


@hookspec(firstresult=True)
def provider_available(provider: str, context: ProviderContext) -> Availability | Awaitable[Availability]:
    """Say, quickly and without spending tokens, whether ``provider`` can serve now.

    A provider whose key is missing answers "not configured" without any
    network call; otherwise a cheap request (a model list) is fine.

    :param provider: the provider's name, as returned by ``provider_info``.
    :param context: the provider's settings, HTTP client and helpers.
    :return: an :class:`~patcode_core.types.Availability`. Do not raise for
        an expected failure (server down, bad key): answer
        ``Availability(available=False, reason=..., suggestion=...)``.
    """


@hookspec(firstresult=True)
def provider_complete(
    provider: str, request: CompletionRequest, context: ProviderContext
) -> ProviderReply | Awaitable[ProviderReply]:
    """Send ``request`` to ``provider`` and return its complete answer.

    :param provider: the provider's name, as returned by ``provider_info``.
    :param request: messages, model, temperature and max tokens to use.
    :param context: the provider's settings, HTTP client and helpers.
    :return: a :class:`~patcode_core.types.ProviderReply` with the whole text.
    :raises patcode_core.errors.ProviderError: for every failure, with the
        :class:`~patcode_core.errors.ErrorKind` that decides fallback, a
        human message and a suggestion. ``httpx`` transport errors may be left
        to propagate: the core turns them into ``CONNECTION`` or ``TIMEOUT``.
        Any other exception is reported as a ``PLUGIN_ERROR`` of this plugin.
    """


@hookspec(firstresult=True)
def provider_stream(
    provider: str, request: CompletionRequest, context: ProviderContext
) -> AsyncIterator[StreamChunk] | Iterator[StreamChunk]:
    """Send ``request`` to ``provider`` and yield its answer as it is written.

    Write it as an ``async def`` generator (a plain generator also works; it
    runs in a worker thread). Open the HTTP response inside the generator
    (``async with context.client.stream(...)``) so that closing the
    generator closes the connection: the core closes it when the caller
    stops, when a token limit passes, or on Ctrl-C.

    A plugin without this hook still streams: the core calls
    ``provider_complete`` and hands the whole answer over as one piece.

    :param provider: the provider's name, as returned by ``provider_info``.
    :param request: messages, model, temperature and max tokens to use.
    :param context: the provider's settings, HTTP client and helpers.
    :return: :class:`~patcode_core.types.StreamChunk` values: text as it
        comes, then one chunk with ``done=True`` when the provider's own end
        marker arrives. Stopping without it means the stream broke. An
        unreadable chunk that can be passed over is yielded with
        ``skipped="why"``.
    :raises patcode_core.errors.ProviderError: as ``provider_complete`` does,
        before or during the stream (an error sent inside a 200 stream too).

    .. versionadded:: 0.2
    """
