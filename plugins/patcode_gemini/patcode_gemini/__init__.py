"""patcode-gemini: Google's Gemini API (``generativelanguage.googleapis.com``) in its own wire format.

Completions are ``POST /v1beta/models/{model}:generateContent``, streams
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``, and the status
check ``GET /v1beta/models/{model}`` (no tokens spent). The key travels in the
``x-goog-api-key`` header, never in the URL, where it would end up in logs.

Settings: ``GEMINI_API_KEY``, ``GEMINI_MODEL``, ``GEMINI_BASE_URL``,
``GEMINI_TIMEOUT``, ``GEMINI_RPM``, ``GEMINI_CACHE``.

The rooms: :mod:`~patcode_gemini.settings` (``GEMINI_*``),
:mod:`~patcode_gemini.wire` (request bodies, answers, usage, finish reasons),
:mod:`~patcode_gemini.errors` (Google's error bodies as ``ProviderError``),
:mod:`~patcode_gemini.prices`, :mod:`~patcode_gemini.messages` and
:mod:`~patcode_gemini.hooks` (the entry point). Only
:mod:`patcode_core.plugin` is imported from PatCode. Nothing is imported
here, so listing providers stays cheap.
"""
