"""Sixteen ways a provider fails, at PatCode's defaults, over real sockets: the outcome, the time, who was asked.

Two OpenAI-style chat-completions servers, each its own process of the
project's fault server (``tests/fakes/provider_server.py``) on loopback:

- the **primary** is ``groq`` (``GROQ_BASE_URL`` → the first server), the
  **fallback** ``openai`` (``OPENAI_BASE_URL`` → the second). No
  ``LLM_FALLBACK_ORDER`` is set: with ``PATCODE_LOAD_PLUGINS=groq,openai``
  PatCode's default order (by plugin priority) is ``groq,openai``;
- every other ``LLM_*`` / ``GROQ_*`` / ``OPENAI_*`` / ``PATCODE_*`` variable is
  removed, so each value is PatCode's default (30 s first token, 15 s stream
  silence, 2 retries, circuit after 3 failures for 30 s, ``GROQ_RPM=30``...),
  except ``LLM_CACHE=false`` (already the default, set to be explicit),
  ``PATCODE_LOG_LEVEL=critical`` (the table is the output) and a fresh
  ``PATCODE_HOME`` in a temporary directory per run. The usage store is
  shared by the behaviours of one run, as a user's would be: where PatCode
  learns from its history (time limits learned from past streams), what an
  earlier behaviour left there shapes a later one, and a run starts with no
  history at all unless ``--warm-up N`` first sends N healthy streams to
  each provider (counted in the run's books);
- keys are fake; ``.env`` is not read.

Each server answers with its own fixed reply (:data:`REPLIES`, 15 and 13
tokens when streamed), so a result can be checked against the whole answer
of the provider that claims it. Calls go through ``LLMManager.stream`` (as the
CLI does on a terminal), consumed to the end, unless said otherwise.

**Outcome.** ``correct``: the final ``CompletionResult``'s text is the whole
reply of the server of the provider named in the result (never a cut one),
and it equals the text the stream showed after its last restart.
``clean error``: where an error is the right outcome (12b, 13), a
``PatCodeError`` of the right kind, and nothing sent where it should not be.
``WRONG``: anything else, with the reason. **Time**: the caller's wall time
of the behaviour's calls (for 15 and 16, of the whole behaviour). **Attempts**:
the chat requests each server received (its own log, ``requests()``).
**Books**: PatCode's own counts for this behaviour (``manager.stats()`` and
the usage store, read back after the manager closed) equal each server's
count, and successes + failures + cancelled = requests in both.

Each behaviour gets a fresh manager and reset servers. The behaviours
(faults are on the primary's server unless said otherwise):

1. *429 with Retry-After*: one 429 (Groq's body, ``Retry-After: 1``), then
   healthy. Correct from the primary (its second request at least 1 s after
   the first: checked on the server's clock) or from the fallback.
2. *429 that persists*: the same 429 on every request. Correct from the fallback.
3. *a 500 once*: then healthy. Correct from either (the primary, retried, is expected).
4. *a 503 that persists*: every request. Correct from the fallback.
5. *a TCP reset*: the first connection is reset (RST) before any answer, then
   healthy. Correct from either (a retry on the primary is expected).
6. *no response at all*: the first request is read and never answered (the
   connection stays open). Correct from either.
7. *a first token that takes 20 s*: 200 and SSE headers at once, then 20 s of
   silence, then the whole answer (``first_token_delay``). Correct from either.
8. *a stream cut mid-answer*: 4 tokens, then the connection drops. Correct
   only with a whole answer (a restart elsewhere or again).
9. *a stream that stalls mid-answer*: 4 tokens, then silence with the
   connection open. As 8.
10. *one malformed chunk*: an unreadable SSE event after 4 tokens, the rest
    healthy. Correct from either.
11. *no [DONE]*: the whole answer and its ``finish_reason``, then the body
    ends without ``data: [DONE]``. Correct from either (the time shows
    whether PatCode waited for a marker that never comes).
12. *context length exceeded*, two calls on one manager, as the fallback
    table of ``docs/errores.md`` says (``context_length``: falls back, not
    retried): (a) the primary answers 400 ``context_length_exceeded`` and the
    fallback, a model with a bigger context, answers: correct is the
    fallback's whole answer with one request to the primary; (b) both answer
    400 ``context_length_exceeded``: correct is a clean
    ``AllProvidersFailedError`` whose failures are both ``context_length``,
    one request each. The row is correct only if both are.
13. *a content filter refusal*: the primary answers 400
    ``content_policy_violation``. Correct is a clean ``ProviderError`` of
    kind ``content_filter`` from the primary, one request, and no request to
    the fallback (its answer would not be the right outcome).
14. *a fallback that rejects an assistant prefill*: the conversation is
    ``[user, assistant "def fallback("]``; the primary answers 503 to every
    request; the fallback answers 400 ``invalid_request_error`` "This model
    does not support assistant message prefill. The conversation must end
    with a user message." No provider can answer this conversation now, so
    an error is right; the prefill must not be dropped silently (the server
    checks the last message it received was the assistant's). The request
    is not at fault (the primary takes prefills; it is down), so the error
    must tell both stories: correct is a clean ``AllProvidersFailedError``
    listing the primary's ``server_error`` and the fallback's rejection; an
    error that names only the fallback's 400 (and blames the parameters) is
    WRONG, and the reason says what PatCode raised.
15. *a primary that flaps*: its server answers 503 for 60 s from the start of
    the behaviour (``"until"`` on the server's clock), then healthy; the
    fallback is healthy. One manager sends a stream every 4 s, at 0, 4 … 76 s
    (20 calls, each started on time unless the one before overran).
    Correct: all 20 whole, AND the primary answers again within 10 s of its
    recovery. The row gives the time of its first answer after recovery, or
    why there was none (its circuit, from ``manager.breakers``).
16. *every attempt counted correctly*: one manager, one workload, no reset:
    a 500 once, a reset once, a stream cut (restarted on the fallback), a
    stream the caller stops after its first token (cancelled), a plain
    ``complete`` with a 429 ``Retry-After: 1``, a content-filter 400, then 6
    concurrent streams while the primary answers the first 3 requests 503.
    Correct: ``manager.stats()`` and the usage store equal each server's
    count with successes + failures + cancelled = requests, AND every
    earlier behaviour's books were right, AND the store's rows for the whole
    run equal the sum of every server count of the run.

Goal: all sixteen correct at the defaults, total ≤ 110 s. The script runs
twice: at the defaults, then with ``LLM_HEDGE=auto``. The hedged run is
skipped, saying why, when PatCode refuses ``LLM_HEDGE=auto`` or does not read
the variable at all (then it also accepts a nonsense value, and the run
would only repeat the first). It always exits 0: it is a benchmark. A
behaviour the suite itself could not run (a bug here, a fault server that
stopped) shows ``suite error`` and counts as not right.

    .venv/bin/python benchmarks/failover_suite.py [--runs defaults,hedged] [--only 1,8,15] [--warm-up 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from _loopback import FakeProviderServer

PRIMARY, FALLBACK = "groq", "openai"
REPLIES = {
    PRIMARY: "Un fallback pasa la petición al siguiente provider cuando el primero falla por su cuenta.",
    FALLBACK: "Fallback: si un provider no responde, otro contesta la misma pregunta, y entera.",
}
PROMPT = "Explica en una frase qué es un fallback."
PREFILL = [{"role": "user", "content": "Completa esta función en Python."}, {"role": "assistant", "content": "def fallback("}]
GOAL_SECONDS = 110.0
#: Server clocks and ours are the same clock; this only absorbs float rounding.
EPSILON = 0.005
CLEARED_PREFIXES = ("LLM_", "GROQ_", "OLLAMA_", "OPENAI_", "LOCAL_", "PATCODE_")
#: Behaviour 15: the outage, the spacing and count of the calls, and how soon the primary must be back.
OUTAGE, SPACING, CALLS, BACK_WITHIN = 60.0, 4.0, 20, 10.0


def api_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An error body as the OpenAI API reference (and Groq) shape it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def http(status: int, body: Any, headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "status": status, "body": body, "headers": headers or {}, **extra}


RATE_LIMITED = http(
    429,
    api_error("Rate limit reached for model `openai/gpt-oss-120b` in organization `org_01` service tier `on_demand` on "
              "requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try again in 1s.", "requests",
              "rate_limit_exceeded"),
    {"retry-after": "1"},
)
SERVER_500 = http(500, api_error("Internal Server Error", "internal_server_error"))
OVERLOADED = http(503, api_error("The engine is currently overloaded, please try again later.", "server_error"))
CONTEXT_PRIMARY = http(400, api_error("Please reduce the length of the messages or completion.", "invalid_request_error",
                                      "context_length_exceeded", "messages"))
CONTEXT_FALLBACK = http(400, api_error("This model's maximum context length is 128000 tokens. However, your messages resulted "
                                       "in 130412 tokens. Please reduce the length of the messages.", "invalid_request_error",
                                       "context_length_exceeded", "messages"))
FILTERED = http(400, api_error("Your request was rejected as a result of our safety system.", "invalid_request_error",
                               "content_policy_violation"))
NO_PREFILL = http(400, api_error("This model does not support assistant message prefill. The conversation must end with "
                                 "a user message.", "invalid_request_error", None, "messages"))


# -- the servers ---------------------------------------------------------


@dataclass
class Servers:
    """The primary's and the fallback's fault-server processes."""

    primary: FakeProviderServer = field(default_factory=FakeProviderServer)
    fallback: FakeProviderServer = field(default_factory=FakeProviderServer)

    def of(self, provider: str) -> FakeProviderServer:
        return self.primary if provider == PRIMARY else self.fallback

    def reset(self) -> None:
        for provider in (PRIMARY, FALLBACK):
            self.of(provider).reset()
            self.of(provider).configure(reply=REPLIES[provider])

    def seen(self) -> Counter[str]:
        """Chat requests each server received since its reset."""
        return Counter({provider: len(self.of(provider).requests("chat")) for provider in (PRIMARY, FALLBACK)})

    def stop(self) -> None:
        self.primary.stop()
        self.fallback.stop()


def use_environment(servers: Servers, home: str, hedge: str | None) -> None:
    """PatCode's defaults: every variable of ours removed, then only the two servers, fake keys and the home."""
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES):
            del os.environ[name]
    os.environ.update(
        {
            "PATCODE_LOAD_PLUGINS": f"{PRIMARY},{FALLBACK}",
            "PATCODE_HOME": home,
            "PATCODE_LOG_LEVEL": "critical",
            "GROQ_API_KEY": "gsk_failover_suite_not_a_real_key_000",
            "GROQ_BASE_URL": f"{servers.primary.url}/openai/v1",
            "OPENAI_API_KEY": "sk-failover-suite-not-a-real-key-0000",
            "OPENAI_BASE_URL": f"{servers.fallback.url}/v1",
            "LLM_CACHE": "false",
        }
    )
    if hedge is not None:
        os.environ["LLM_HEDGE"] = hedge


def new_manager() -> Any:
    from patcode_core.manager import LLMManager
    from patcode_core.plugins import PluginHost

    return LLMManager(host=PluginHost.discover(), env_file=None)


def hedge_refusal(value: str) -> str | None:
    """Why a run with ``LLM_HEDGE=value`` cannot measure hedging (``None``: PatCode reads the variable)."""
    from patcode_core.config import load_settings
    from patcode_core.errors import ConfigError
    from patcode_core.plugins import PluginHost

    host = PluginHost.discover()
    before = os.environ.get("LLM_HEDGE")
    try:
        os.environ["LLM_HEDGE"] = value
        try:
            load_settings(host, None)
        except ConfigError as error:
            return f"PatCode refuses LLM_HEDGE={value}: {error.message.splitlines()[-1].strip()}"
        os.environ["LLM_HEDGE"] = "not-a-hedge-mode"
        try:
            load_settings(host, None)
        except ConfigError as error:
            if "LLM_HEDGE" in str(error):
                return None
        return (f"PatCode does not read LLM_HEDGE: it takes LLM_HEDGE={value} and LLM_HEDGE=not-a-hedge-mode alike "
                "without a word (unknown LLM_* variables are ignored), so this run would only repeat the defaults")
    finally:
        if before is None:
            os.environ.pop("LLM_HEDGE", None)
        else:
            os.environ["LLM_HEDGE"] = before


# -- one call ------------------------------------------------------------


@dataclass
class Call:
    """What one call gave: its result or error, what the stream showed, how long it took."""

    result: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    shown: str = ""
    restarts: int = 0
    started: float = 0.0
    ended: float = 0.0


async def stream_call(manager: Any, prompt: Any, *, stop_after_first_text: bool = False, **options: Any) -> Call:
    """One ``manager.stream`` read to its end, as the CLI reads it (or stopped after the first text)."""
    from patcode_core.types import CompletionResult, StreamRestarted, TextDelta

    call = Call(started=time.monotonic())
    try:
        async with aclosing(manager.stream(prompt, **options)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    call.shown += event.text
                    if stop_after_first_text:
                        break
                elif isinstance(event, StreamRestarted):
                    call.shown, call.restarts = "", call.restarts + 1
                elif isinstance(event, CompletionResult):
                    call.result = event
    except Exception as error:  # a benchmark reports a crash as an outcome
        call.error = error
    call.ended = time.monotonic()
    call.seconds = call.ended - call.started
    return call


async def plain_call(manager: Any, prompt: Any) -> Call:
    """One ``manager.complete``."""
    call = Call(started=time.monotonic())
    try:
        call.result = await manager.complete(prompt)
        call.shown = call.result.text
    except Exception as error:
        call.error = error
    call.ended = time.monotonic()
    call.seconds = call.ended - call.started
    return call


def path_of(failures: Iterable[Any], answered_by: str | None = None) -> str:
    """``groq server_error×3 → openai ✓``: each failure (or skip) of a call, in order."""
    steps: list[list[Any]] = []
    for failure in failures:
        label = f"{failure.provider} {'skip:' if failure.skipped else ''}{failure.kind.value}"
        if steps and steps[-1][0] == label:
            steps[-1][1] += 1
        else:
            steps.append([label, 1])
    parts = [label + (f"×{count}" if count > 1 else "") for label, count in steps]
    if answered_by:
        parts.append(f"{answered_by} ✓")
    return " → ".join(parts)


def error_text(error: BaseException) -> str:
    from patcode_core.errors import AllProvidersFailedError, PatCodeError, ProviderError

    if isinstance(error, AllProvidersFailedError):
        return f"AllProvidersFailedError: {path_of(error.failures)}"
    if isinstance(error, ProviderError):
        return f"ProviderError({error.provider}, {error.kind.value}): {error}"
    if isinstance(error, PatCodeError):
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return f"crashed: {type(error).__name__}: {error}"


def judge_answer(call: Call) -> tuple[bool, str]:
    """(correct, detail): a whole answer from the provider it names, the same text that was shown."""
    if call.error is not None:
        return False, error_text(call.error)
    result = call.result
    if result is None:
        return False, "the stream ended without a result"
    whole = REPLIES.get(result.provider, "")
    if result.text != whole:
        return False, f"{result.provider}'s text is not its whole answer ({len(result.text)} of {len(whole)} chars)"
    if call.shown != result.text:
        return False, "the text shown is not the result's"
    detail = path_of(result.failures, result.provider)
    return True, detail + (f" (↻ restarted ×{call.restarts})" if call.restarts else "")


# -- the behaviours ------------------------------------------------------


@dataclass
class Outcome:
    verdict: str  # "correct", "clean error", "WRONG" or "suite error"
    seconds: float
    detail: str

    @property
    def right(self) -> bool:
        return self.verdict in ("correct", "clean error")


Run = Callable[[Any, Servers], Awaitable[Outcome]]


def answered(primary: Iterable[dict[str, Any]], extra: Callable[[Call, Servers], tuple[bool, str]] | None = None) -> Run:
    """A behaviour whose right outcome is a whole answer: ``primary`` faults, a healthy fallback.

    ``extra`` checks more of a right answer: (still right, a note for the detail).
    """

    async def run(manager: Any, servers: Servers) -> Outcome:
        faults = list(primary)
        if faults:
            servers.primary.fault("chat", *faults)
        call = await stream_call(manager, PROMPT)
        right, detail = judge_answer(call)
        if right and extra is not None:
            right, note = extra(call, servers)
            if not right:
                detail = note
            elif note:
                detail = f"{detail}, {note}"
        return Outcome("correct" if right else "WRONG", call.seconds, detail)

    return run


def waited_as_asked(call: Call, servers: Servers) -> tuple[bool, str]:
    """Behaviour 1: a retry on the primary came no sooner than its Retry-After (on the server's clock)."""
    at = [request["at"] for request in servers.primary.requests("chat")]
    if call.result.provider != PRIMARY or len(at) < 2:
        return True, ""
    gap = at[1] - at[0]
    if gap < 1.0 - EPSILON:
        return False, f"retried {gap:.2f}s after a 429 that asked for 1s"
    return True, f"retried after {gap:.2f}s"


async def context_length(manager: Any, servers: Servers) -> Outcome:
    """12: (a) the fallback's bigger context answers; (b) nobody's does: a clean error."""
    from patcode_core.errors import AllProvidersFailedError, ErrorKind

    servers.primary.fault("chat", CONTEXT_PRIMARY, CONTEXT_PRIMARY)
    servers.fallback.fault("chat", {"type": "ok"}, CONTEXT_FALLBACK)
    first = await stream_call(manager, PROMPT)
    a_right, a_detail = judge_answer(first)
    if a_right and len(servers.primary.requests("chat")) != 1:
        a_right, a_detail = False, f"the primary got {len(servers.primary.requests('chat'))} requests (a request's own fault is not retried)"
    second = await stream_call(manager, PROMPT)
    error = second.error
    kinds = [f.kind for f in error.failures] if isinstance(error, AllProvidersFailedError) else []
    b_right = isinstance(error, AllProvidersFailedError) and kinds == [ErrorKind.CONTEXT_LENGTH] * 2
    b_detail = error_text(error) if error is not None else judge_answer(second)[1] + " instead of an error"
    seen = servers.seen()
    if b_right and seen != Counter({PRIMARY: 2, FALLBACK: 2}):
        b_right, b_detail = False, f"requests {dict(seen)}, expected one each per call"
    right = a_right and b_right
    verdict = "correct" if right else "WRONG"
    return Outcome(verdict, first.seconds + second.seconds, f"(a) {a_detail}; (b) {b_detail}")


async def content_filter(manager: Any, servers: Servers) -> Outcome:
    """13: a clean content_filter error from the primary; the fallback is never asked."""
    from patcode_core.errors import ErrorKind, ProviderError

    servers.primary.fault("chat", FILTERED)
    call = await stream_call(manager, PROMPT)
    error = call.error
    if call.result is not None:
        return Outcome("WRONG", call.seconds, f"answered by {call.result.provider} instead of refusing: "
                                              f"{path_of(call.result.failures, call.result.provider)}")
    right = isinstance(error, ProviderError) and error.kind is ErrorKind.CONTENT_FILTER and error.provider == PRIMARY
    seen = servers.seen()
    if right and seen != Counter({PRIMARY: 1}):
        return Outcome("WRONG", call.seconds, f"requests {dict(seen)} for a refusal (one to the primary expected)")
    return Outcome("clean error" if right else "WRONG", call.seconds, error_text(error) if error else "no error")


async def prefill(manager: Any, servers: Servers) -> Outcome:
    """14: the primary is down, the fallback rejects the conversation's trailing assistant message."""
    from patcode_core.errors import AllProvidersFailedError, ErrorKind, ProviderError

    servers.primary.fault("chat", {**OVERLOADED, "always": True})
    servers.fallback.fault("chat", NO_PREFILL)
    call = await stream_call(manager, PREFILL)
    sent = servers.fallback.requests("chat")
    if sent and (sent[-1]["body"].get("messages") or [{}])[-1].get("role") != "assistant":
        return Outcome("WRONG", call.seconds, "the prefill was dropped before the fallback saw the conversation")
    if call.result is not None:
        return Outcome("WRONG", call.seconds, f"an answer that ignores the prefill: {path_of(call.result.failures, call.result.provider)}")
    error = call.error
    if isinstance(error, AllProvidersFailedError):
        providers = {failure.provider for failure in error.failures}
        primary_down = any(f.provider == PRIMARY and f.kind is ErrorKind.SERVER_ERROR for f in error.failures)
        if primary_down and FALLBACK in providers:
            return Outcome("clean error", call.seconds, error_text(error))
        return Outcome("WRONG", call.seconds, f"{error_text(error)} (one side of the story is missing)")
    if isinstance(error, ProviderError) and error.provider == FALLBACK:
        return Outcome("WRONG", call.seconds,
                       f"raised only the fallback's {error.kind.value}, not the primary's "
                       f"{len(servers.primary.requests('chat'))}×503: «{error}»")
    return Outcome("WRONG", call.seconds, error_text(error) if error else "no result, no error")


async def flapping(manager: Any, servers: Servers) -> Outcome:
    """15: 503 for 60 s (server clock), then healthy; a stream every 4 s for 76 s."""
    start, wall = time.monotonic(), time.time()
    recovered = start + OUTAGE
    servers.primary.fault("chat", {**OVERLOADED, "always": True, "until": wall + OUTAGE})
    calls: list[Call] = []
    for index in range(CALLS):
        await asyncio.sleep(max(0.0, start + index * SPACING - time.monotonic()))
        calls.append(await stream_call(manager, PROMPT))
    seconds = time.monotonic() - start
    whole = sum(judge_answer(call)[0] for call in calls)
    by = Counter(call.result.provider for call in calls if call.result is not None)
    back = next((call for call in calls if call.started >= recovered and call.result is not None
                 and call.result.provider == PRIMARY), None)
    answered_all = whole == CALLS
    if back is not None:
        delay = back.ended - recovered
        primary_back = delay <= BACK_WITHIN
        back_text = f"primary back at +{delay:.1f}s after its recovery"
    else:
        primary_back = False
        circuits = manager.breakers.status(PRIMARY)
        state = (f"; its circuit is {circuits[0].state.value}, next probe in {circuits[0].retry_in:.0f}s "
                 f"(cooldown {circuits[0].cooldown:g}s)") if circuits else ""
        probes = [round(r["at"] - wall, 1) for r in servers.primary.requests("chat")]
        back_text = f"primary never answered after its recovery at {OUTAGE:g}s (its requests at {probes} s){state}"
    served = " · ".join(f"{name} {count}" for name, count in sorted(by.items()))
    detail = f"{whole}/{CALLS} whole ({served}); {back_text}"
    return Outcome("correct" if answered_all and primary_back else "WRONG", seconds, detail)


async def counting(manager: Any, servers: Servers) -> Outcome:
    """16, first half: a mixed workload on one manager; the books are checked by :func:`run_suite`."""
    started = time.monotonic()
    servers.primary.fault("chat", SERVER_500)
    await stream_call(manager, PROMPT)
    servers.primary.fault("chat", {"type": "reset"})
    await stream_call(manager, PROMPT)
    servers.primary.fault("chat", {"type": "stream", "mode": "cut", "after": 4})
    await stream_call(manager, PROMPT)
    servers.primary.fault("chat", {"type": "stream", "mode": "ok", "token_delay": 0.05})
    await stream_call(manager, PROMPT, stop_after_first_text=True)
    servers.primary.fault("chat", RATE_LIMITED)
    await plain_call(manager, PROMPT)
    servers.primary.fault("chat", FILTERED)
    await stream_call(manager, PROMPT)
    servers.primary.fault("chat", {**OVERLOADED, "times": 3})
    await asyncio.gather(*(stream_call(manager, PROMPT) for _ in range(6)))
    return Outcome("correct", time.monotonic() - started, "")


@dataclass(frozen=True)
class Behaviour:
    number: int
    name: str
    run: Run


BEHAVIOURS = [
    Behaviour(1, "429 with Retry-After", answered([RATE_LIMITED], waited_as_asked)),
    Behaviour(2, "429 that persists", answered([{**RATE_LIMITED, "always": True}])),
    Behaviour(3, "a 500 once", answered([SERVER_500])),
    Behaviour(4, "a 503 that persists", answered([{**OVERLOADED, "always": True}])),
    Behaviour(5, "a TCP reset", answered([{"type": "reset"}])),
    Behaviour(6, "no response at all", answered([{"type": "hang"}])),
    Behaviour(7, "a first token that takes 20 s", answered([{"type": "stream", "mode": "ok", "first_token_delay": 20}])),
    Behaviour(8, "a stream cut mid-answer", answered([{"type": "stream", "mode": "cut", "after": 4}])),
    Behaviour(9, "a stream that stalls mid-answer", answered([{"type": "stream", "mode": "stall", "after": 4}])),
    Behaviour(10, "one malformed chunk", answered([{"type": "stream", "mode": "malformed_chunk", "after": 4}])),
    Behaviour(11, "no [DONE]", answered([{"type": "stream", "mode": "no_done_finished"}])),
    Behaviour(12, "context length exceeded", context_length),
    Behaviour(13, "a content filter refusal", content_filter),
    Behaviour(14, "a fallback that rejects a prefill", prefill),
    Behaviour(15, "a primary that flaps (60 s down)", flapping),
    Behaviour(16, "every attempt counted correctly", counting),
]


# -- the books -----------------------------------------------------------


def store_figures(since: float) -> dict[str, Any]:
    """The usage store's figures per provider since ``since``, read back from the file the managers wrote."""
    from patcode_core.accounting.history import summarize
    from patcode_core.accounting.store import UsageStore
    from patcode_core.paths import DATABASE_NAME, data_dir

    path = data_dir() / DATABASE_NAME
    if not path.exists():
        return {}
    store = UsageStore(path)
    try:
        return {usage.provider: usage for usage in summarize(store, since)}
    finally:
        store.close()


def audit(stats: dict[str, Any], store: dict[str, Any], seen: Counter[str]) -> list[str]:
    """Every way PatCode's counts differ from the servers' (empty: the books are right)."""
    problems = []
    for provider in (PRIMARY, FALLBACK):
        for source, figures in (("stats", stats.get(provider)), ("store", store.get(provider))):
            requests = figures.requests if figures is not None else 0
            if requests != seen[provider]:
                problems.append(f"{source} {provider} {requests} requests, server {seen[provider]}")
            if figures is not None and figures.successes + figures.failures + figures.cancelled != requests:
                problems.append(f"{source} {provider} {figures.successes}+{figures.failures}+{figures.cancelled}≠{requests}")
    return problems


def books_summary(stats: dict[str, Any]) -> str:
    return "; ".join(
        f"{name} {s.requests} = {s.successes} ok + {s.failures} failed + {s.cancelled} cancelled"
        for name, s in sorted(stats.items())
        if s.requests
    )


# -- a run ---------------------------------------------------------------


@dataclass
class Row:
    behaviour: Behaviour
    outcome: Outcome
    seen: Counter[str]
    problems: list[str]


async def warm_up(servers: Servers, streams: int) -> Counter[str]:
    """``streams`` healthy streams to each provider, so the run starts with a history; the requests each server got."""
    servers.reset()
    manager = new_manager()
    try:
        for provider in (PRIMARY, FALLBACK):
            for _ in range(streams):
                await stream_call(manager, PROMPT, provider=provider, fallback=False)
    finally:
        await manager.aclose()
    return servers.seen()


async def run_suite(servers: Servers, hedge: str | None, selected: list[Behaviour], warm: int) -> list[Row]:
    home = tempfile.mkdtemp(prefix="patcode-failover-suite-")
    use_environment(servers, home, hedge)
    run_since = time.time()
    rows: list[Row] = []
    try:
        before = await warm_up(servers, warm) if warm else Counter()
        if warm:
            print(f"  warm-up: {warm} healthy streams to each provider first ({dict(before)} requests)")
        for behaviour in selected:
            servers.reset()
            since = time.time()
            manager = new_manager()
            started = time.monotonic()
            try:
                outcome = await behaviour.run(manager, servers)
            except Exception as error:  # the suite's own failure, never passed off as PatCode's
                outcome = Outcome("suite error", time.monotonic() - started, f"{type(error).__name__}: {error}")
            finally:
                await manager.aclose()
            seen = servers.seen()
            stats = manager.stats()
            problems = audit(stats, store_figures(since), seen)
            if behaviour.number == 16:
                outcome = settle_books(outcome, stats, problems, rows, seen + before, run_since)
            rows.append(Row(behaviour, outcome, seen, problems))
            print_row(rows[-1])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows


def settle_books(outcome: Outcome, stats: dict[str, Any], problems: list[str], rows: list[Row], seen: Counter[str],
                 run_since: float) -> Outcome:
    """16: its own books, every earlier behaviour's, and the run's store against the sum of every server count."""
    wrong = list(problems)
    earlier = [row.behaviour.number for row in rows if row.problems]
    if earlier:
        wrong.append(f"books wrong in {', '.join(map(str, earlier))}")
    run_seen = sum((row.seen for row in rows), Counter()) + seen
    run_store = store_figures(run_since)
    stored = Counter({name: usage.requests for name, usage in run_store.items()})
    if +stored != +run_seen:
        wrong.append(f"run store {dict(stored)} vs servers {dict(run_seen)}")
    totals = f"run: store = servers = {dict(run_seen)}" if +stored == +run_seen else ""
    detail = "; ".join(wrong) if wrong else f"{books_summary(stats)}; {totals}"
    return Outcome("WRONG" if wrong else "correct", outcome.seconds, detail)


def print_header(title: str) -> None:
    print(f"\n{title}")
    print(f"{'#':>3}  {'behaviour':34s} {'outcome':11s} {'time':>8s}  {PRIMARY:>5s} {FALLBACK:>6s}  books  detail")


def print_row(row: Row) -> None:
    behaviour, outcome = row.behaviour, row.outcome
    books = "ok" if not row.problems else "WRONG"
    detail = outcome.detail + ("" if not row.problems or behaviour.number == 16 else f" [books: {'; '.join(row.problems)}]")
    print(f"{behaviour.number:>3}  {behaviour.name:34s} {outcome.verdict:11s} {outcome.seconds:7.2f}s  "
          f"{row.seen[PRIMARY]:>5d} {row.seen[FALLBACK]:>6d}  {books:5s}  {detail}", flush=True)


def print_total(rows: list[Row]) -> None:
    total = sum(row.outcome.seconds for row in rows)
    right = [row for row in rows if row.outcome.right]
    wrong = [row.behaviour.number for row in rows if not row.outcome.right]
    print(f"total {total:.1f}s (goal ≤ {GOAL_SECONDS:g}s: {'met' if total <= GOAL_SECONDS else 'missed'}); "
          f"right {len(right)}/{len(rows)} (correct answer or clean error)"
          + (f"; not right: {', '.join(map(str, wrong))}" if wrong else ""))


async def main_async(runs: list[str], only: set[int] | None, warm: int) -> None:
    selected = [b for b in BEHAVIOURS if only is None or b.number in only]
    servers = Servers()
    try:
        for run in runs:
            hedge = "auto" if run == "hedged" else None
            title = ("defaults (no LLM_* set)" if hedge is None else f"LLM_HEDGE={hedge}, the rest at the defaults")
            title = f"run: {title}; primary {PRIMARY} → fallback {FALLBACK}, each on its own fault server"
            if hedge is not None:
                use_environment(servers, tempfile.gettempdir(), None)
                refusal = hedge_refusal(hedge)
                if refusal:
                    print(f"\n{title}\n  skipped: {refusal}")
                    continue
            print_header(title)
            rows = await run_suite(servers, hedge, selected, warm)
            print_total(rows)
    finally:
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="defaults,hedged", help="comma-separated: defaults, hedged")
    parser.add_argument("--only", default="", help="comma-separated behaviour numbers (default: all sixteen)")
    parser.add_argument("--warm-up", type=int, default=0, metavar="N",
                        help="N healthy streams to each provider before the behaviours (default 0: no history)")
    args = parser.parse_args()
    runs = [run.strip() for run in args.runs.split(",") if run.strip() in ("defaults", "hedged")]
    only = {int(number) for number in args.only.split(",") if number.strip()} or None
    started = time.monotonic()
    asyncio.run(main_async(runs, only, args.warm_up))
    print(f"\nwall time {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
