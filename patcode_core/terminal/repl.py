"""The interactive session: a prompt with history and completion, answers streamed as they are written.

On a terminal the prompt is prompt_toolkit's: line editing, history kept
across sessions (:func:`patcode_core.paths.history_file`), Tab completion of
slash commands and provider names, multi-line input (pasted text keeps its
lines; Alt+Enter adds one). From a pipe, lines are read plainly. Ctrl-C
during an answer stops that answer; Ctrl-C or Ctrl-D at the prompt ends the
session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from patcode_core.i18n import t
from patcode_core.log import before_each_line
from patcode_core.safe_text import colors_on, for_terminal_line
from patcode_core.terminal.console import AnswerPrinter, Spinner
from patcode_core.types import CompletionResult

if TYPE_CHECKING:
    from patcode_core.agent import PatAgent
    from patcode_core.manager import SyncLLMManager

PROMPT = "patcode> "
LLM_WORDS = ("providers", "switch", "stats", "test", "cache")
SESSION_WORDS = ("help", "clear", "exit", "llm")


def completions(line: str, providers: Sequence[str]) -> list[str]:
    """What may follow ``line`` (the text before the cursor): the next word's candidates, whole."""
    if not line.startswith("/"):
        return []
    words = line[1:].split(" ")
    if len(words) == 1:
        return [f"/{word}" + (" " if word == "llm" else "") for word in SESSION_WORDS if word.startswith(words[0])]
    if words[0] == "llm" and len(words) == 2:
        return [word + (" " if word in ("switch", "test") else "") for word in LLM_WORDS if word.startswith(words[1])]
    if words[0] == "llm" and words[1] in ("switch", "test") and len(words) == 3:
        return [name for name in providers if name.startswith(words[2])]
    return []


def _terminal_reader(providers: Sequence[str]) -> Callable[[], str]:
    """A prompt_toolkit prompt with history, completion and multi-line editing."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    from patcode_core.paths import history_file
    from patcode_core.private_files import private_dir, private_file

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterable[Completion]:
            before = document.text_before_cursor
            partial = before.rsplit(" ", 1)[-1]
            for candidate in completions(before, providers):
                yield Completion(candidate, start_position=-len(partial))

    history: History
    path = history_file()
    try:
        private_dir(path.parent)  # 0700, and the file 0600: what you typed is yours alone
        private_file(path)
        history = FileHistory(str(path))
    except OSError as exc:
        print(t("cli.history_off", file=path, error=exc.strerror or exc), file=sys.stderr)
        history = InMemoryHistory()
    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    session: PromptSession[str] = PromptSession(
        history=history,
        completer=SlashCompleter(),
        complete_while_typing=False,
        key_bindings=keys,
        prompt_continuation=lambda width, line_number, wrap_count: "." * (width - 1) + " ",
    )
    return lambda: session.prompt(PROMPT)


def _plain_reader() -> Callable[[], str]:
    def read() -> str:
        return input(PROMPT)

    return read


#: Routing events that name the provider tried next (see :meth:`LLMManager.watch`).
_TRYING = {"fallback_trying": "provider", "rate_limit_wait": "provider", "stream_restarted": "to_provider"}


def stream_answer(facade: SyncLLMManager, agent: PatAgent, text: str) -> None:
    """Stream one turn into the terminal; the conversation keeps it only if it finished.

    The spinner names the provider being tried, following the route as it is
    walked; a log line or notice printed meanwhile never shares a line with
    the spinner or with streamed text.
    """
    out = sys.stdout
    color = colors_on(out)
    manager = facade.manager
    printer = AnswerPrinter(out, color=color, max_tokens=manager.settings.llm.max_tokens)
    provider = for_terminal_line(manager.first_configured() or facade.get_current_provider() or "-")
    spinner = Spinner(out, t("cli.thinking", provider=provider), color=color).start()

    def follow(event: str, fields: Mapping[str, Any]) -> None:
        if event == "hedge_started":  # two providers race: name both
            both = f"{for_terminal_line(str(fields.get('provider')))} + {for_terminal_line(str(fields.get('hedge')))}"
            spinner.set_text(t("cli.thinking", provider=both))
            return
        name = fields.get(_TRYING.get(event, ""))
        if name:
            spinner.set_text(t("cli.thinking", provider=for_terminal_line(str(name))))

    def before_line() -> None:
        spinner.clear()
        printer.break_line()

    stop_following = manager.watch(follow)
    before_each_line(before_line)
    try:
        for event in facade.stream(agent.messages_for(text), conversation=agent.conversation):
            spinner.stop()
            printer.show(event)
            if isinstance(event, CompletionResult):
                agent.remember(text, event.text)
    except KeyboardInterrupt:
        spinner.stop()
        printer.interrupted()
        print(t("cli.interrupted"), file=sys.stderr)
    except Exception:
        spinner.stop()
        printer.interrupted()  # the error is printed next, on a line of its own
        raise
    finally:
        spinner.stop()
        before_each_line(None)
        stop_following()


def welcome(facade: SyncLLMManager) -> str:
    """The first line of a session: the current provider and, if it has no key, who will answer instead."""
    current = facade.get_current_provider()
    answering = facade.manager.first_configured()
    if current is None or answering == current:
        return t("cli.welcome", provider=for_terminal_line(current or "-"))
    if answering is None:
        return t("cli.welcome_none_configured", provider=for_terminal_line(current))
    return t("cli.welcome_unconfigured", provider=for_terminal_line(current), answering=for_terminal_line(answering))


def run_session(facade: SyncLLMManager, on_command: Callable[[str, PatAgent], bool]) -> int:
    """Read prompts until Ctrl-D, Ctrl-C at the prompt or ``/exit``; returns the exit code.

    :param on_command: handles one ``/`` line; returns False to end the session.
    """
    from patcode_core.agent import PatAgent
    from patcode_core.terminal.exits import EXIT_OK, guard

    agent = PatAgent(facade.manager)
    read = _terminal_reader(facade.manager.installed) if sys.stdin.isatty() and sys.stdout.isatty() else _plain_reader()
    print(welcome(facade))
    while True:
        try:
            line = read().strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return EXIT_OK
        if not line:
            continue
        if line.startswith("/") and "\n" not in line:
            if not on_command(line, agent):
                return EXIT_OK
            continue

        def ask(text: str = line) -> int:
            stream_answer(facade, agent, text)
            return EXIT_OK

        guard(ask)
