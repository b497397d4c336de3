"""``patcode serve``: PatCode as an chat-completions-compatible HTTP gateway, with a web page for people.

Every request goes through the same :class:`~patcode_core.manager.LLMManager`
as the CLI (fallback, retries, circuits, limits, cache, usage store).

- :mod:`.app` builds the ASGI app; :mod:`.serve` is the command.
- :mod:`.chat_request` and :mod:`.chat_response` speak the chat-completions wire.
- :mod:`.api_errors` turns every failure into the chat-completions API's error shape and status.
- :mod:`.access` holds the rules of who may call: loopback, bearer token, page session, CSRF.
- :mod:`.metrics` is ``/metrics`` (Prometheus); :mod:`.page`, :mod:`.page_actions` and :mod:`.charts` the page.
"""
