"""patcode-anthropic: Claude for PatCode, through Anthropic's Messages API.

The hooks are in :mod:`patcode_anthropic.hooks` (the entry point); nothing is
imported here, so listing providers stays cheap. The plugin is built only on
the public module :mod:`patcode_core.plugin`.

- :mod:`~patcode_anthropic.settings`: ``ANTHROPIC_*`` variables;
- :mod:`~patcode_anthropic.models`: the default model, prices, which models take a temperature;
- :mod:`~patcode_anthropic.wire`: request body and headers, the message object, stop reasons;
- :mod:`~patcode_anthropic.stream`: the streamed events;
- :mod:`~patcode_anthropic.errors`: Anthropic's errors as ProviderErrors;
- :mod:`~patcode_anthropic.availability`: the ``GET /v1/models`` check;
- :mod:`~patcode_anthropic.messages`: the texts, in Spanish and English.
"""
