"""Showing a streamed answer in a terminal: a spinner until the first token, then text as it comes.

Fenced Markdown code blocks are drawn with a frame and a gutter so code
stands apart from prose (colours only on a real terminal). The printer works
on any text stream, so pipes and tests get the same text without escapes.
"""

from __future__ import annotations

import itertools
import sys
import threading
from typing import TextIO

from patcode_core.i18n import t
from patcode_core.safe_text import for_terminal, for_terminal_line
from patcode_core.types import CompletionResult, StreamRestarted, StreamStarted, TextDelta

FENCE = "```"
_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_DIM, _CODE, _WARN, _RESET = "\x1b[2m", "\x1b[36m", "\x1b[33m", "\x1b[0m"


class Spinner:
    """A one-line "thinking" indicator on ``out``, redrawn by a daemon thread until stopped.

    Safe to stop twice; prints nothing when ``out`` is not a terminal; dim
    only when ``color`` is on.
    """

    def __init__(self, out: TextIO, text: str, interval: float = 0.08, *, color: bool = True) -> None:
        self._out = out
        self._text = text
        self._style, self._reset = (_DIM, _RESET) if color else ("", "")
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._shown = False

    def start(self) -> Spinner:
        """Begin drawing (only on a terminal)."""
        if self._out.isatty():
            self._thread = threading.Thread(target=self._spin, name="patcode-spinner", daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        for frame in itertools.cycle(_FRAMES):
            with self._lock:
                if self._stop.is_set():
                    return
                self._out.write(f"\r{self._style}{frame} {self._text}{self._reset}")
                self._out.flush()
                self._shown = True
            if self._stop.wait(self._interval):
                return

    def set_text(self, text: str) -> None:
        """Show ``text`` from the next frame on (the provider being tried changed)."""
        with self._lock:
            self._text = text

    def clear(self) -> None:
        """Erase the spinner's line (it keeps spinning); used before a log line is printed."""
        with self._lock:
            if self._shown:
                self._out.write("\r\x1b[2K")
                self._out.flush()

    def stop(self) -> None:
        """Stop and erase the spinner."""
        with self._lock:
            self._stop.set()
            if self._shown:
                self._out.write("\r\x1b[2K")
                self._out.flush()
                self._shown = False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1)


class MarkdownStream:
    """Writes answer text to ``out`` as it arrives, framing fenced code blocks.

    A line is held back only while it might still be a fence (its first three
    visible characters); everything else is written at once.
    """

    def __init__(self, out: TextIO, color: bool) -> None:
        self._out = out
        self._color = color
        self._in_code = False
        self._line: str | None = ""  # None once the current line is known not to be a fence
        self._colored = False
        self.at_line_start = True

    def feed(self, text: str) -> None:
        """Write ``text`` (any size, any split), its control and invisible characters shown escaped."""
        for char in for_terminal(text):
            if self._line is None:
                self._write(char)
                if char == "\n":
                    self._line = ""
                    self.at_line_start = True
                continue
            self._line += char
            visible = self._line.lstrip(" ")
            if char == "\n":
                self._end_of_line(self._line)
            elif visible.startswith(FENCE):
                continue  # a fence: wait for the end of the line (its language)
            elif not FENCE.startswith(visible):
                held, self._line = self._line, None
                self._start_line()
                self._write(held)
        self._out.flush()

    def break_line(self) -> None:
        """End the line the answer is on, if text is on it, so that a line printed now starts on its own.

        The answer goes on, on the next line, as a new line (inside a code
        block, with its gutter). Nothing is written when the cursor is
        already at the start of a line.
        """
        if self.at_line_start:
            return
        if self._colored:
            self._out.write(_RESET)
            self._colored = False
        self._out.write("\n")
        self._line = ""
        self.at_line_start = True
        self._out.flush()

    def finish(self) -> None:
        """Flush a held line and close an open code block."""
        if self._line:
            self._end_of_line(self._line + "\n")
        elif self._line is None:
            self._write("\n")
        if self._colored:
            self._out.write(_RESET)
            self._colored = False
        if self._in_code:
            self._rule("╰─")
            self._in_code = False
        self._line = ""
        self.at_line_start = True
        self._out.flush()

    def _end_of_line(self, line: str) -> None:
        visible = line.strip()
        if visible.startswith(FENCE):
            if self._in_code:
                self._rule("╰─")
            else:
                language = visible[len(FENCE) :].strip()
                self._rule(f"╭─ {language}" if language else "╭─")
            self._in_code = not self._in_code
        else:
            self._start_line()
            self._write(line)
        self._line = ""
        self.at_line_start = True

    def _start_line(self) -> None:
        self.at_line_start = False
        if self._in_code:
            self._out.write(f"{_DIM}│{_RESET} " if self._color else "│ ")

    def _write(self, text: str) -> None:
        self.at_line_start = text.endswith("\n")
        if not (self._in_code and self._color):
            self._out.write(text)
            return
        if not self._colored:  # one colour switch per code line, not per character
            self._out.write(_CODE)
            self._colored = True
        if text.endswith("\n"):
            self._out.write(f"{text[:-1]}{_RESET}\n")
            self._colored = False
        else:
            self._out.write(text)

    def _rule(self, text: str) -> None:
        self._out.write(f"{_DIM}{text}{_RESET}\n" if self._color else f"{text}\n")


class AnswerPrinter:
    """Prints the events of :meth:`LLMManager.stream` for a person to read.

    :param out: where the answer goes (stdout).
    :param color: use ANSI colours (a real terminal).
    :param max_tokens: to name the limit when an answer was cut by it.
    """

    def __init__(self, out: TextIO, *, color: bool, max_tokens: int) -> None:
        self._out = out
        self._color = color
        self._max_tokens = max_tokens
        self._text = MarkdownStream(out, color)

    def show(self, event: object) -> None:
        """Print one stream event."""
        if isinstance(event, StreamStarted):
            key = "cli.stream_header_cached" if event.cached else "cli.stream_header"
            header = t(key, provider=for_terminal_line(event.provider), model=for_terminal_line(event.model))
            self._line(self._dim(header))
        elif isinstance(event, TextDelta):
            self._text.feed(event.text)
        elif isinstance(event, StreamRestarted):
            self._text.finish()
            notice = t(
                "cli.stream_restarted",
                provider=for_terminal_line(event.to_provider),
                reason=for_terminal_line(event.reason.rstrip(".")),
            )
            self._line(f"{_WARN}{notice}{_RESET}" if self._color else notice)
        elif isinstance(event, CompletionResult):
            self._text.finish()
            self._line(self._dim(footer(event)))
            for note in answer_notes(event, self._max_tokens):
                print(note, file=sys.stderr)

    def interrupted(self) -> None:
        """End the partial answer's line after Ctrl-C."""
        self._text.finish()

    def break_line(self) -> None:
        """Before a log line or notice: end the line the streamed text is on, so they never share one."""
        self._text.break_line()

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def _dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self._color else text


def answer_notes(result: CompletionResult, max_tokens: int) -> list[str]:
    """Warnings that belong under an answer: cut by our token limit, or by a limit of the server's own."""
    if not result.truncated:
        return []
    got = result.usage.output_tokens
    if got is not None and got > max_tokens:  # the server ignored LLM_MAX_TOKENS: the cut was its own
        return [t("cli.truncated_by_server", got=got, max_tokens=max_tokens)]
    return [t("cli.truncated", max_tokens=max_tokens)]


def footer(result: CompletionResult) -> str:
    """The line under an answer: time, time to first token, tokens (or that they were not counted), cache."""
    parts = [f"{result.latency:.2f}s"]
    if result.time_to_first_token is not None:
        parts.append(t("cli.first_token", seconds=f"{result.time_to_first_token:.2f}"))
    if result.usage.output_tokens is not None:
        parts.append(t("cli.tokens", count=result.usage.output_tokens))
    else:
        parts.append(t("cli.tokens_uncounted"))  # the provider did not say: unknown, never 0
    if result.cached:
        parts.append(t("cli.from_cache"))
    return f"[{' · '.join(parts)}]"
