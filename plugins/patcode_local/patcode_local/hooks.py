"""The ``local`` provider's hooks: a GGUF model run in this process, the last step of the fallback order.

Installed, it answers when every remote provider fails and the machine is
offline: no key, no server, it costs 0. Its priority puts it last in the
default fallback order. Importing this module is cheap: ``llama_cpp`` is only
imported by the worker thread, the first time a request reaches the model.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from patcode_core.plugin import (
    ANY_MODEL,
    Availability,
    CompletionRequest,
    ErrorKind,
    Price,
    ProviderContext,
    ProviderError,
    ProviderInfo,
    ProviderReply,
    StreamChunk,
    Usage,
    hookimpl,
)
from patcode_core.plugin import (
    core_message as core_t,
)
from patcode_local.messages import MESSAGES
from patcode_local.model_file import Missing, binding_missing, unusable, what_is_missing
from patcode_local.runtime import (
    BindingBroken,
    ContextTooLong,
    Engine,
    EngineKey,
    Finished,
    GenerationFailed,
    LoadFailed,
    TemplateFailed,
    engine_for,
)
from patcode_local.settings import LocalSettings

NAME = "local"
#: After every other provider in the default order (core and first-party plugins use 10..100).
PRIORITY = 1000
#: Extra seconds for the first token of the first request in a process (the model loads then).
COLD_START = 60.0


@hookimpl
def provider_info() -> ProviderInfo:
    """Local: no key, no network, costs nothing, tried last."""
    return ProviderInfo(
        name=NAME,
        display_name="Local (llama.cpp)",
        settings_class=LocalSettings,
        key_env=None,
        priority=PRIORITY,
        # The first request loads the model into this process: a tenth of a second for SmolLM2, many for a big GGUF.
        cold_start=COLD_START,
        description=MESSAGES.t("description"),
        prices={ANY_MODEL: Price(0.0, 0.0, "local")},
    )


def _missing_error(context: ProviderContext, missing: Missing, model: str | None) -> ProviderError:
    return context.error(ErrorKind.NOT_CONFIGURED, missing.reason, missing.suggestion, model=model)


def _model_file(context: ProviderContext, model: str) -> Path:
    """The GGUF file for ``model``: the configured one, or a ``.gguf`` path named in the route (``local//models/x.gguf``)."""
    settings: LocalSettings = context.settings  # type: ignore[assignment]
    if model == settings.model:
        path, problem = what_is_missing(settings.model_path)
    elif model.endswith(".gguf"):
        path = Path(model).expanduser().absolute()
        problem = binding_missing() or unusable(path, label=str(path))
    else:
        raise context.error(
            ErrorKind.MODEL_NOT_FOUND,
            MESSAGES.t("unknown_model", model=model, configured=settings.model),
            MESSAGES.t("fix_model", configured=settings.model),
            model=model,
        )
    if problem is not None:
        raise _missing_error(context, problem, model)
    assert path is not None
    return path


def _engine(context: ProviderContext, model: str) -> Engine:
    settings: LocalSettings = context.settings  # type: ignore[assignment]
    path = _model_file(context, model)
    return engine_for(EngineKey(os.fspath(path), settings.n_ctx, settings.threads))


def _as_provider_error(context: ProviderContext, exc: Exception, engine: Engine, model: str) -> ProviderError:
    """What the worker reported, as the error the route understands (never a traceback)."""
    if isinstance(exc, ContextTooLong):
        return context.error(
            ErrorKind.CONTEXT_LENGTH,
            MESSAGES.t("context_too_long", prompt=exc.prompt_tokens, max_tokens=exc.max_tokens, n_ctx=exc.n_ctx),
            MESSAGES.t("fix_context", n_ctx=exc.n_ctx),
            model=model,
        )
    if isinstance(exc, BindingBroken):
        return context.error(
            ErrorKind.NOT_CONFIGURED, MESSAGES.t("binding_broken", detail=str(exc)), MESSAGES.t("reinstall_binding"), model=model
        )
    if isinstance(exc, LoadFailed):
        return context.error(
            ErrorKind.MODEL_NOT_FOUND,
            MESSAGES.t("load_failed", path=engine.key.path, detail=str(exc)),
            MESSAGES.t("fix_load"),
            model=model,
        )
    if isinstance(exc, TemplateFailed):
        return context.error(
            ErrorKind.BAD_REQUEST, MESSAGES.t("template_failed", detail=str(exc)), MESSAGES.t("fix_template"), model=model
        )
    return context.error(
        ErrorKind.SERVER_ERROR, MESSAGES.t("generation_failed", detail=str(exc)), core_t("suggest.retry_later"), model=model
    )


async def _answer(request: CompletionRequest, context: ProviderContext) -> AsyncIterator[str | Finished]:
    """The model's text as it is written, then its :class:`Finished`; failures as ProviderErrors."""
    engine = _engine(context, request.model)
    messages = [message.as_dict() for message in request.messages]
    events = engine.stream(messages, request.temperature, request.max_tokens)
    try:
        async for event in events:
            yield event
    except (BindingBroken, ContextTooLong, LoadFailed, TemplateFailed, GenerationFailed) as exc:
        raise _as_provider_error(context, exc, engine, request.model) from None
    finally:
        await events.aclose()  # stops the generation when the caller stopped reading


@hookimpl
async def provider_available(provider: str, context: ProviderContext) -> Availability:
    """✅ when the binding is installed and the model file is a readable GGUF; the model is not loaded."""
    settings: LocalSettings = context.settings  # type: ignore[assignment]
    path, problem = what_is_missing(settings.model_path)
    if problem is not None:
        return Availability(False, problem.reason, problem.suggestion, ErrorKind.NOT_CONFIGURED)
    return Availability(True, models=(settings.model,))


def _empty_answer(context: ProviderContext, finished: Finished, model: str) -> ProviderError:
    suggestion = core_t("suggest.raise_max_tokens") if finished.finish_reason == "length" else core_t("suggest.retry_later")
    return context.error(ErrorKind.MALFORMED_RESPONSE, core_t("error.malformed", detail="empty answer"), suggestion, model=model)


@hookimpl
async def provider_complete(provider: str, request: CompletionRequest, context: ProviderContext) -> ProviderReply:
    """The whole answer, generated in the worker thread, with the model's own token counts."""
    parts: list[str] = []
    async for event in _answer(request, context):
        if isinstance(event, Finished):
            if not parts:  # as a stream that ends before any text: worth another try, or the next provider
                raise _empty_answer(context, event, request.model)
            return ProviderReply(
                text="".join(parts),
                model=request.model,
                finish_reason=event.finish_reason,
                usage=Usage(event.prompt_tokens, event.completion_tokens),
            )
        parts.append(event)
    raise AssertionError("the local stream ended without its Finished event")  # pragma: no cover


@hookimpl
async def provider_stream(provider: str, request: CompletionRequest, context: ProviderContext) -> AsyncIterator[StreamChunk]:
    """One chunk per piece of text as the model writes it, then the end marker with the real counts."""
    async for event in _answer(request, context):
        if isinstance(event, Finished):
            yield StreamChunk(
                finish_reason=event.finish_reason,
                usage=Usage(event.prompt_tokens, event.completion_tokens),
                model=request.model,
                done=True,
            )
            return
        yield StreamChunk(text=event, model=request.model)
