"""The model in this process: loaded at first use, one generation at a time in its own worker thread.

:class:`Engine` owns one GGUF model (per file, context size and thread count):

- **Lazy, once.** The model loads when the first request reaches the worker
  and stays loaded for the life of the process; :meth:`Engine.load` is guarded
  by a lock. A file that failed to load is not retried until it changes.
- **One at a time, in order.** Requests wait in a FIFO queue; one daemon
  worker thread generates for them one after the other. A caller that gives
  up while waiting (cancelled, timed out) leaves the queue without generating.
- **Stops within a token.** The worker checks the request's stop flag after
  every token; cancelling the awaiting task, a deadline, or closing the
  stream sets it, so the model is free for the next caller a token later.
- **Real counts.** Prompt tokens are the chat template's rendering of the
  messages, tokenized by the model; completion tokens are counted as they
  are sampled. ``finish_reason`` is ``length`` only when ``max_tokens`` was
  reached; a prompt that leaves no room for ``max_tokens`` is refused before
  generating (:class:`ContextTooLong`), as OpenAI's API does.

``llama_cpp`` is imported inside the worker, at the first load: importing this
module costs nothing.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patcode_local.model_file import file_signature

#: Sampling as llama-cpp-python's ``create_chat_completion`` does it by default.
TOP_K = 40
TOP_P = 0.95
MIN_P = 0.05
REPEAT_PENALTY = 1.0
#: At exit, how long to wait for a generation to notice its stop flag before the model is freed.
EXIT_WAIT = 2.0


class LoadFailed(Exception):
    """The binding could not load the GGUF file (damaged, or a format it does not know)."""


class BindingBroken(Exception):
    """``llama_cpp`` is installed but cannot be imported (its compiled library is missing or does not load)."""


class ContextTooLong(Exception):
    """The prompt plus ``max_tokens`` does not fit the context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        super().__init__(f"{prompt_tokens} + {max_tokens} > {n_ctx}")
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx


class TemplateFailed(Exception):
    """The model's chat template refused the messages (``raise_exception`` in the template, a Jinja error)."""


class GenerationFailed(Exception):
    """llama.cpp failed in the middle of a generation."""


@dataclass(frozen=True, slots=True)
class EngineKey:
    """What makes two engines different: the file and the settings the model is loaded with."""

    path: str
    n_ctx: int
    threads: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of an answer: why it ended and what the model counted."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def first_line(exc: BaseException) -> str:
    """An exception as one short line for a message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class Job:
    """One request: waiting for the engine, being generated, or finished.

    :param deliver: called from the worker thread with each piece of text,
        then a :class:`Finished` or an exception.
    """

    def __init__(
        self, messages: Sequence[dict[str, str]], temperature: float, max_tokens: int, deliver: Callable[[object], None]
    ) -> None:
        self.messages = list(messages)
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.deliver = deliver
        self.stop = threading.Event()
        #: Set once the worker is done with this job (answered, stopped, failed or skipped).
        self.done = threading.Event()
        #: Whether the worker began generating for it (False: it left the queue first).
        self.started = False
        #: Tokens the model has sampled for this answer so far.
        self.sampled = 0
        #: ``sampled`` when the stop was asked for (None: never stopped).
        self.sampled_at_stop: int | None = None

    def cancel(self) -> None:
        """Ask the worker to stop (or skip this job), at the next token at the latest."""
        if not self.stop.is_set() and not self.done.is_set():
            self.sampled_at_stop = self.sampled
            self.stop.set()

    @property
    def tokens_after_stop(self) -> int | None:
        """Tokens sampled after the stop was asked for (the cost of stopping); None if not stopped."""
        return None if self.sampled_at_stop is None else self.sampled - self.sampled_at_stop


def _chat_formatter(llama: Any) -> Callable[..., Any]:
    """The GGUF's own chat template, built as llama-cpp-python builds it; Llama 2's format when the file has none."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return llama_chat_format.format_llama2
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )


class Engine:
    """One GGUF model in this process, generating for one caller at a time."""

    def __init__(self, key: EngineKey) -> None:
        self.key = key
        self.llama: Any = None
        self._formatter: Callable[..., Any] | None = None
        self._is_eog: Callable[[int], bool] | None = None
        self._load_lock = threading.Lock()
        self._failed: tuple[tuple[int, int] | None, LoadFailed] | None = None
        self._queue: deque[Job] = deque()
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._busy = False
        #: Seconds the model took to load (None until it has).
        self.load_seconds: float | None = None
        #: The last job the worker took (for tests and benchmarks).
        self.last_job: Job | None = None
        #: Requests generated for, and requests that left the queue before their turn.
        self.generations = 0
        self.left_queue = 0

    # -- the model -----------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self.llama is not None

    def load(self) -> Any:
        """The loaded ``Llama``, loading it the first time (once, under a lock).

        :raises LoadFailed: the file cannot be loaded; the same failure is
            raised again without a new attempt until the file changes.
        """
        if self.llama is not None:
            return self.llama
        with self._load_lock:
            if self.llama is not None:
                return self.llama
            signature = file_signature(Path(self.key.path))
            if self._failed is not None and self._failed[0] == signature:
                raise LoadFailed(str(self._failed[1]))
            started = time.perf_counter()
            try:
                from llama_cpp import Llama, llama_vocab_is_eog
            except Exception as exc:  # ImportError, or OSError from loading libllama.so
                raise BindingBroken(first_line(exc)) from exc
            try:
                llama = Llama(
                    model_path=self.key.path,
                    n_ctx=self.key.n_ctx,
                    n_threads=self.key.threads,
                    n_threads_batch=self.key.threads,
                    verbose=False,  # llama.cpp's own log would garble the terminal
                )
                formatter = _chat_formatter(llama)
            except Exception as exc:  # the binding says ValueError, RuntimeError or OSError, depending on the step
                failure = LoadFailed(first_line(exc))
                self._failed = (signature, failure)
                raise failure from exc
            vocab = llama._model.vocab
            self._is_eog = lambda token: bool(llama_vocab_is_eog(vocab, token))
            self._formatter = formatter
            self.load_seconds = time.perf_counter() - started
            self.llama = llama
            return llama

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """``messages`` rendered with the model's chat template and tokenized, as ``create_chat_completion`` does."""
        llama = self.load()
        assert self._formatter is not None
        try:
            rendered = self._formatter(messages=list(messages))
        except Exception as exc:  # jinja2's TemplateError, or the template's own raise_exception (ValueError)
            raise TemplateFailed(first_line(exc)) from exc
        return llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    # -- the queue -----------------------------------------------------

    @property
    def waiting(self) -> int:
        """Requests in the queue, not yet taken by the worker."""
        with self._changed:
            return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether the worker is generating (or loading) right now."""
        with self._changed:
            return self._busy

    def submit(self, job: Job) -> None:
        """Put ``job`` at the end of the queue (and start the worker the first time)."""
        with self._changed:
            self._queue.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"patcode-local:{Path(self.key.path).name}", daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def withdraw(self, job: Job) -> bool:
        """Take ``job`` out of the queue if the worker has not taken it yet."""
        with self._changed:
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            self.left_queue += 1
        job.done.set()
        return True

    def wait_idle(self, seconds: float) -> bool:
        """Wait until nothing is queued or generating; False if ``seconds`` pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy and not self._queue, seconds)

    def stop_all(self) -> None:
        """Stop the generation in progress and everything queued (at exit)."""
        with self._changed:
            jobs = list(self._queue)
            self._queue.clear()
            running = self.last_job
        for job in jobs:
            job.cancel()
            job.done.set()
        if running is not None:
            running.cancel()

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                job = self._queue.popleft()
                self._busy = True
                self.last_job = job
                job.started = not job.stop.is_set()  # a caller that gave up while waiting never generates
                if job.started:
                    self.generations += 1
                else:
                    self.left_queue += 1
            try:
                if job.started:
                    self._run(job)
            finally:
                job.done.set()
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _run(self, job: Job) -> None:
        try:
            tokens = self.prompt_tokens(job.messages)
            if len(tokens) + job.max_tokens > self.key.n_ctx:
                raise ContextTooLong(len(tokens), job.max_tokens, self.key.n_ctx)
            if job.stop.is_set():  # stopped while the model was loading
                return
            finished = self._generate(tokens, job)
        except Exception as exc:  # every failure goes to the caller, who turns it into a ProviderError
            job.deliver(exc)
            return
        if finished is not None:
            job.deliver(finished)

    def _generate(self, tokens: list[int], job: Job) -> Finished | None:
        """Sample token by token, delivering text as it forms; None when stopped."""
        llama, is_eog = self.llama, self._is_eog
        assert is_eog is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character split across tokens waits
        finish_reason = "length"
        generated = 0
        try:
            for token in llama.generate(
                tokens,
                temp=job.temperature,
                top_k=TOP_K,
                top_p=TOP_P,
                min_p=MIN_P,
                repeat_penalty=REPEAT_PENALTY,
            ):
                job.sampled += 1
                if job.stop.is_set():
                    return None
                if is_eog(token):
                    finish_reason = "stop"
                    break
                generated += 1
                text = decoder.decode(llama.detokenize([token]))
                if text:
                    job.deliver(text)
                if generated >= job.max_tokens:
                    break
        except Exception as exc:  # llama_decode failing (out of memory, a broken file read lazily)
            raise GenerationFailed(first_line(exc)) from exc
        # Bytes of a character the cut left unfinished (max_tokens inside an emoji) are dropped, never shown as '�'.
        return Finished(finish_reason, len(tokens), generated)

    # -- the caller's side ---------------------------------------------

    async def stream(
        self, messages: Sequence[dict[str, str]], temperature: float, max_tokens: int, on_job: Callable[[Job], None] | None = None
    ) -> AsyncIterator[str | Finished]:
        """Queue a request and yield its text as it is written, then a :class:`Finished`.

        Closing this generator, or cancelling the task that reads it, stops
        the generation (or takes the request out of the queue).

        :raises BindingBroken | LoadFailed | ContextTooLong | TemplateFailed | GenerationFailed:
            what went wrong in the worker.
        """
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[object] = asyncio.Queue()

        def deliver(event: object) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, event)
            except RuntimeError:  # the event loop is closed: nobody reads this answer any more
                job.cancel()

        job = Job(messages, temperature, max_tokens, deliver)
        if on_job is not None:
            on_job(job)
        self.submit(job)
        ended = False
        try:
            while True:
                event = await inbox.get()
                if isinstance(event, BaseException):
                    ended = True
                    raise event
                if isinstance(event, Finished):
                    ended = True
                yield event  # type: ignore[misc]
                if ended:
                    return
        finally:
            if not ended:  # closed, cancelled or timed out before the end: free the model for the next caller
                job.cancel()
                self.withdraw(job)


_engines: dict[EngineKey, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(key: EngineKey) -> Engine:
    """The process's engine for ``key``, created (not loaded) the first time."""
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if not _engines:
                atexit.register(_shut_down)
            engine = _engines[key] = Engine(key)
        return engine


def _shut_down() -> None:
    """At exit: stop what is generating, then free each model while the interpreter is still whole."""
    with _engines_lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.stop_all()
    for engine in engines:
        if engine.llama is not None and engine.wait_idle(EXIT_WAIT):
            engine.llama.close()
