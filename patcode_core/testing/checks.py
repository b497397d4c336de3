"""The conformance checks: each an ``async def check_*(kit, ...)`` that raises ``AssertionError`` saying what the plugin did wrong.

They drive the plugin through the core (``LLMManager``) where behaviour is
the point (kinds, fallback, retries, streams) and call its hooks directly
where the plugin's own output is (the key in its errors, its stream chunks).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from patcode_core.accounting.prices import PriceBook
from patcode_core.errors import POLICY, PatCodeError, ProviderError
from patcode_core.testing.description import UNSET, ErrorCase, StreamCase, WireCase
from patcode_core.testing.hosts import BACKUP, BackupProvider
from patcode_core.testing.kit import PROMPT, Kit
from patcode_core.testing.static import check_plugin
from patcode_core.testing.wire import serve_everywhere
from patcode_core.types import (
    FINISH_CONTENT_FILTER,
    FINISH_LENGTH,
    FINISH_STOP,
    FINISH_TOOL_CALLS,
    Availability,
    CompletionResult,
    StreamChunk,
    Usage,
)

FINISH_WORDS = (FINISH_STOP, FINISH_LENGTH, FINISH_CONTENT_FILTER, FINISH_TOOL_CALLS)

async def _outcome(call: Awaitable[CompletionResult]) -> CompletionResult | PatCodeError:
    try:
        return await call
    except PatCodeError as exc:
        return exc


async def _stream_outcome(events: AsyncIterator[Any]) -> tuple[list[Any], PatCodeError | None]:
    seen = []
    try:
        async for event in events:
            seen.append(event)
    except PatCodeError as exc:
        return seen, exc
    return seen, None


def _texts_of(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc)]
    for attribute in ("message", "suggestion", "partial_text"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str):
            texts.append(value)
    return texts


def _describe_status(case: WireCase) -> str:
    return f"HTTP {case.status}" + (f" ({case.label})" if case.label else "")


def _check_answer(kit: Kit, result: CompletionResult, text: str, usage: Usage | None, finish: str | None, what: str) -> None:
    assert result.provider == kit.name, f"{what}: answered by {result.provider!r}, not {kit.name!r}"
    assert result.text == text, f"{what}: the text read is {result.text!r}, the description says {text!r}"
    assert result.finish_reason in FINISH_WORDS, (
        f"{what}: finish_reason {result.finish_reason!r} is not one of {', '.join(FINISH_WORDS)}: "
        "translate the provider's own word (the truncation warning and the cache read it)"
    )
    if finish is not None:
        assert result.finish_reason == finish, f"{what}: finish_reason {result.finish_reason!r}, the description says {finish!r}"
    if usage is not None:
        got = (result.usage.input_tokens, result.usage.output_tokens)
        assert got == (usage.input_tokens, usage.output_tokens), (
            f"{what}: usage (input, output) is {got}, the description says {(usage.input_tokens, usage.output_tokens)}"
        )


def _check_cost(kit: Kit, result: CompletionResult, expected: Any, what: str) -> None:
    if result.cost is not None:
        assert math.isfinite(result.cost) and result.cost >= 0, f"{what}: cost {result.cost!r} is not a finite amount"
    if expected is not UNSET:
        if expected is None:
            assert result.cost is None, f"{what}: cost {result.cost!r}, the description says unknown (None)"
        else:
            assert result.cost == pytest.approx(expected), f"{what}: cost {result.cost!r} USD, the description says {expected!r}"
        return
    requested = kit.settings().model
    price = PriceBook({kit.name: kit.info.prices}).price(kit.name, requested)
    counted = result.usage.input_tokens is not None and result.usage.output_tokens is not None
    free = price is not None and price.input_per_million == 0 and price.output_per_million == 0
    if price is not None and (counted or free):
        assert result.cost is not None, (
            f"{what}: {kit.name} publishes a price for {requested!r} and the answer counted its tokens, yet its cost is "
            f"unknown: the answer names the model {result.model!r}, which no price covers "
            "(a pattern such as 'model-name*' covers dated names)"
        )


# -- the checks ------------------------------------------------------------


async def check_static(kit: Kit) -> None:
    """Hook and argument names, ``provider_info``, settings defaults and catalogues (see :func:`check_plugin`)."""
    problems = check_plugin(kit.plugin)
    assert not problems, "static checks:\n- " + "\n- ".join(problems)


async def _complete_success(kit: Kit) -> CompletionResult:
    description = kit.description
    with kit.serving(description.success) as route:
        async with kit.manager() as manager:
            outcome = await _outcome(manager.complete(PROMPT, fallback=False))
    assert route.called, f"the plugin never sent {' '.join(map(str, kit.url(description.success)))}: check the description's method and path"
    assert isinstance(outcome, CompletionResult), f"the described success answer raised {type(outcome).__name__}: {outcome}"
    return outcome


async def check_success(kit: Kit) -> None:
    """The success answer: its text, a finish-reason word, its token counts."""
    description = kit.description
    result = await _complete_success(kit)
    _check_answer(kit, result, description.expected_text, description.expected_usage, description.finish_reason, "success")


async def check_cost(kit: Kit) -> None:
    """The success answer's cost: the described one, or at least known when the model has a published price."""
    result = await _complete_success(kit)
    _check_cost(kit, result, kit.description.cost, "success")


async def check_error_kind(kit: Kit, case: ErrorCase) -> None:
    """The answer raises a ProviderError of the described kind, with the wait it asks for."""
    with kit.serving(case.wire) as route:
        async with kit.manager() as manager:
            outcome = await _outcome(manager.complete(PROMPT, fallback=False))
    what = _describe_status(case.wire)
    assert route.called, f"{what}: the plugin never sent the request the case answers"
    assert isinstance(outcome, ProviderError), (
        f"{what} must raise a ProviderError of kind {case.kind.value}; got "
        + (f"an answer: {outcome.text!r}" if isinstance(outcome, CompletionResult) else f"{type(outcome).__name__}: {outcome}")
    )
    assert outcome.kind is case.kind, f"{what} must raise {case.kind.value}, the plugin raised {outcome.kind.value}: {outcome}"
    assert outcome.provider == kit.name, f"{what}: the error names the provider {outcome.provider!r}, not {kit.name!r}"
    wait = case.wire.expected_retry_after()
    if wait is not None:
        assert outcome.retry_after == pytest.approx(wait, rel=0.05, abs=0.05), (
            f"{what} asks to wait {wait:g}s; the error's retry_after is {outcome.retry_after!r} "
            "(pass it to context.error(..., retry_after=...); retry_after_seconds(response.headers) reads the headers)"
        )


async def check_fallback(kit: Kit, case: ErrorCase) -> None:
    """With another provider next, the call goes on to it exactly when the kind says so, after one request."""
    backup = BackupProvider()
    with kit.serving(case.wire) as route:
        async with kit.manager(backup=backup) as manager:
            outcome = await _outcome(manager.complete(PROMPT))
    what = _describe_status(case.wire)
    assert route.call_count == 1, (
        f"{what}: the plugin sent {route.call_count} requests for one call with LLM_MAX_RETRIES=0: "
        "a plugin neither retries nor waits, the core does"
    )
    if POLICY[case.kind].fallback:
        assert isinstance(outcome, CompletionResult) and outcome.provider == BACKUP, (
            f"{what} ({case.kind.value}) must fall back to the next provider; the call ended with {outcome!r}"
        )
        kinds = [failure.kind.value for failure in outcome.failures if failure.provider == kit.name]
        assert case.kind.value in kinds, f"{what}: the failures the call records are {kinds}, not {case.kind.value}"
    else:
        assert isinstance(outcome, ProviderError) and outcome.kind is case.kind and not backup.calls, (
            f"{what} ({case.kind.value}) must end the call without falling back; it ended with {outcome!r} "
            f"after {len(backup.calls)} call(s) to the next provider"
        )


#: A retry the provider asks to wait longer for is not sent within this budget.
RETRY_DEADLINE = "3"


async def check_retry(kit: Kit, case: ErrorCase) -> None:
    """With one retry allowed, a retryable kind is asked again (unless the provider asked to wait); another kind is not."""
    env = {"LLM_MAX_RETRIES": "1", "LLM_MAX_RATE_LIMIT_WAIT": "0", "LLM_REQUEST_DEADLINE": RETRY_DEADLINE}
    with kit.serving(case.wire) as route:
        async with kit.manager(**env) as manager:
            outcome = await _outcome(manager.complete(PROMPT, fallback=False))
    what = f"{_describe_status(case.wire)} ({case.kind.value})"
    count = route.call_count
    if not POLICY[case.kind].retryable:
        assert count == 1, f"{what} is not retried, yet {count} requests were sent for one call"
        return
    told_to_wait = isinstance(outcome, ProviderError) and (outcome.retry_after or 0) > 0
    assert count == 2 or (count == 1 and told_to_wait), (
        f"{what} is retried once with LLM_MAX_RETRIES=1 (or held back when the provider asks to wait): "
        f"{count} requests were sent; the call ended with {outcome!r}"
    )


async def check_no_key_in_errors(kit: Kit, case: ErrorCase) -> None:
    """Every text of every error and availability answer the plugin makes of this answer, before the core's redaction, lacks the key."""
    key = kit.description.key
    if not key:
        pytest.skip("the description sets no key")
    secrets = [key] + ([key[-4:]] if len(key) >= 12 else [])
    found: list[tuple[str, str]] = []
    for language in ("es", "en"):
        kit.env.set(PATCODE_LANG=language)
        texts: list[tuple[str, str]] = []
        with serve_everywhere(case.wire):
            async with kit.context() as context:
                try:
                    await kit.call("provider_complete", context, request=kit.request())
                except Exception as exc:  # what the plugin raises is exactly what is checked
                    texts += [("provider_complete", text) for text in _texts_of(exc)]
                if kit.has_hook("provider_available"):
                    try:
                        answer = await kit.call("provider_available", context)
                    except Exception as exc:
                        texts += [("provider_available", text) for text in _texts_of(exc)]
                    else:
                        if isinstance(answer, Availability):
                            texts += [("provider_available", answer.reason), ("provider_available", answer.suggestion)]
        found += [(hook, text) for hook, text in texts if any(secret in text for secret in secrets)]
    assert not found, f"{_describe_status(case.wire)}: the key (or its last four characters) shows in " + "; ".join(
        f"{hook}: {text!r}" for hook, text in found
    )


def _stream_case(kit: Kit) -> StreamCase:
    stream = kit.description.stream
    if stream is None:
        pytest.skip("the description has no stream")
    return stream


async def check_stream_chunks(kit: Kit) -> None:
    """The plugin's own chunks: text, then one ``done=True`` chunk last, with a finish word and the counts."""
    stream = _stream_case(kit)
    assert kit.has_hook("provider_stream"), "the description has a stream, but the plugin has no provider_stream hook"
    chunks: list[StreamChunk] = []
    with kit.serving(stream):
        async with kit.context() as context:
            answer = await kit.call("provider_stream", context, request=kit.request())
            if hasattr(answer, "__aiter__"):
                chunks = [chunk async for chunk in answer]
            else:
                chunks = list(answer)
    assert all(isinstance(chunk, StreamChunk) for chunk in chunks), "provider_stream must yield StreamChunk values only"
    ends = [index for index, chunk in enumerate(chunks) if chunk.done]
    assert ends, "the whole stream ended without a chunk with done=True: the core would treat it as cut"
    assert ends == [len(chunks) - 1], f"done=True must be on the last chunk only; it is on chunks {ends} of {len(chunks)}"
    text = "".join(chunk.text for chunk in chunks)
    expected = stream.text if stream.text is not None else kit.description.expected_text
    assert text == expected, f"the stream's text is {text!r}, the description says {expected!r}"
    finish = next((chunk.finish_reason for chunk in reversed(chunks) if chunk.finish_reason), None)
    assert finish in FINISH_WORDS, f"the stream ends with finish_reason {finish!r}, not one of {', '.join(FINISH_WORDS)}"
    if stream.usage is not None:
        usage = Usage()
        for chunk in chunks:
            usage = usage.merged(chunk.usage)
        got, want = (usage.input_tokens, usage.output_tokens), (stream.usage.input_tokens, stream.usage.output_tokens)
        assert got == want, f"the stream's usage (input, output), merged chunk by chunk, is {got}; the description says {want}"


async def check_stream(kit: Kit) -> None:
    """The whole stream through the core: the answer, its finish word, its counts and its cost."""
    stream = _stream_case(kit)
    with kit.serving(stream):
        async with kit.manager() as manager:
            events, error = await _stream_outcome(manager.stream(PROMPT, fallback=False))
    assert error is None, f"the whole described stream raised {type(error).__name__}: {error}"
    assert events and isinstance(events[-1], CompletionResult), "the stream did not end with an answer"
    expected = stream.text if stream.text is not None else kit.description.expected_text
    _check_answer(kit, events[-1], expected, stream.usage, stream.finish_reason, "stream")
    _check_cost(kit, events[-1], UNSET, "stream")


async def check_cut_stream(kit: Kit, cut: str) -> None:
    """A stream cut before its end marker (the body ends, or the connection resets) is never an answer of this provider."""
    stream = _stream_case(kit)
    how = "ends" if cut == "eof" else "is reset"
    with kit.serving(stream, cut=cut):
        async with kit.manager(LLM_STREAM_RECOVERY="error") as manager:
            events, error = await _stream_outcome(manager.stream(PROMPT, fallback=False))
    results = [event for event in events if isinstance(event, CompletionResult)]
    assert not results, (
        f"a stream whose body {how} after {stream.cut_after} of its {len(stream.events)} events was returned as a "
        f"whole answer: {results[0].text!r}; yield done=True only on the provider's own end marker"
    )
    assert error is not None, f"a stream whose body {how} after {stream.cut_after} events ended with no error"
    backup = BackupProvider()
    with kit.serving(stream, cut=cut):
        async with kit.manager(backup=backup, LLM_STREAM_RECOVERY="restart") as manager:
            events, error = await _stream_outcome(manager.stream(PROMPT))
    ours = [event for event in events if isinstance(event, CompletionResult) and event.provider == kit.name]
    assert not ours, f"with a provider to restart on, the cut stream ({how}) still came back from {kit.name}: {ours[0].text!r}"
    assert error is None and events and events[-1].provider == BACKUP, (
        f"a stream cut mid-way ({how}) must restart on the next provider; the call ended with {error or events[-1]!r}"
    )
