"""The ``patcode`` command: a thin layer over :class:`LLMManager`.

``patcode`` alone opens an interactive session; ``patcode chat "..."`` answers
once; ``patcode llm providers|switch|stats|test`` mirror the ``/llm`` commands.
Exit codes: 0 success, 1 a provider failed, 2 bad usage or configuration,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from patcode_core import __version__
from patcode_core.errors import UsageError
from patcode_core.i18n import t
from patcode_core.terminal.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, guard

if TYPE_CHECKING:
    from patcode_core.agent import PatAgent
    from patcode_core.manager import SyncLLMManager

ENV_FILE = ".env"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help with its own words (``usage:``) in the user's language; descriptions keep their lines."""

    def add_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, t("cli.usage_prefix") if prefix is None else prefix)


#: argparse's error sentences (it has no catalogue of its own in the user's language) and ours.
_ARGPARSE_ERRORS = (
    (re.compile(r"the following arguments are required: (?P<names>.+)"), "cli.arg_required"),
    (re.compile(r"unrecognized arguments: (?P<args>.+)"), "cli.arg_unrecognized"),
    (re.compile(r"argument (?P<option>.+?): invalid choice: (?P<value>.+) \(choose from (?P<choices>.+)\)"), "cli.arg_invalid_choice"),
    (re.compile(r"argument (?P<option>.+?): expected one argument"), "cli.arg_expected_one"),
)


def _translated_error(message: str) -> str:
    for pattern, key in _ARGPARSE_ERRORS:
        match = pattern.fullmatch(message)
        if match:
            return t(key, **match.groupdict())
    return message


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that speaks the user's language: usage, section titles, ``-h`` and its errors.

    Sub-parsers are made of the same class (``add_subparsers`` uses the parent's type).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = t("cli.positionals_title")
        self._optionals.title = t("cli.options_title")
        self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS, help=t("cli.help_help"))

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, t("cli.arg_error", prog=self.prog, message=_translated_error(message)) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="patcode", description=t("cli.description"))
    parser.add_argument(
        "--version", action="version", version=f"patcode {__version__}", help=t("cli.help_version")
    )
    commands = parser.add_subparsers(dest="command", metavar="{chat,llm,plugins,serve}", title=t("cli.commands_title"))
    chat = commands.add_parser("chat", help=t("cli.help_chat"), description=t("cli.help_chat"))
    chat.add_argument("prompt", help=t("cli.help_prompt"))
    chat.add_argument("--provider", metavar=t("cli.metavar_name"), help=t("cli.help_provider"))
    chat.add_argument("--model", metavar=t("cli.metavar_model"), help=t("cli.help_model"))
    chat.add_argument("--no-fallback", action="store_true", help=t("cli.help_no_fallback"))
    llm = commands.add_parser(
        "llm",
        help=t("cli.help_llm"),
        usage="%(prog)s {providers,switch,test,stats,cache} ...",
        description=t("cli.llm_description"),
        epilog=t("cli.llm_commands"),
    )
    # The words are read by run_llm_command (the same code as /llm); the epilog lists them all.
    llm.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    plugins = commands.add_parser("plugins", help=t("cli.help_plugins"), description=t("cli.help_plugins"))
    plugins.add_argument("action", nargs="?", choices=["new"], help=t("cli.help_plugins_new"))
    plugins.add_argument("name", nargs="?", metavar=t("cli.metavar_name"), help=t("cli.help_plugins_name"))
    plugins.add_argument("--dir", default=".", metavar=t("cli.metavar_dir"), help=t("cli.help_plugins_dir"))
    serve = commands.add_parser("serve", help=t("cli.help_serve"), description=t("cli.serve_description"))
    serve.add_argument("--host", default="127.0.0.1", metavar=t("cli.metavar_host"), help=t("cli.help_serve_host"))
    serve.add_argument("--port", type=int, default=8787, metavar=t("cli.metavar_port"), help=t("cli.help_serve_port"))
    parser.set_defaults(llm_help=llm.format_help)
    return parser


def _stats_parser() -> argparse.ArgumentParser:
    """``stats [reset] [--since 1h|7d|2026-11-01] [--provider NAME] [--json] [--plot FILE.png] [--yes]``."""
    parser = argparse.ArgumentParser(prog="llm stats", add_help=False, exit_on_error=False)
    parser.add_argument("action", nargs="?", choices=["reset"])
    parser.add_argument("--since")
    parser.add_argument("--provider")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot")
    parser.add_argument("--yes", action="store_true")
    return parser


def _facade() -> SyncLLMManager:
    from patcode_core.manager import SyncLLMManager

    return SyncLLMManager()


def _print_answer(facade: SyncLLMManager, result: object) -> None:
    from patcode_core.terminal.console import answer_notes
    from patcode_core.terminal.render import answer_header, answer_text

    print(answer_header(result))  # type: ignore[arg-type]
    print(answer_text(result))  # type: ignore[arg-type]
    for note in answer_notes(result, facade.manager.settings.llm.max_tokens):  # type: ignore[arg-type]
        print(note, file=sys.stderr)


def persist_default_provider(name: str, path: Path) -> None:
    """Write ``LLM_DEFAULT_PROVIDER=name`` into ``path`` (replacing an earlier line)."""
    from patcode_core.dotenv_file import write_settings

    write_settings(path, {"LLM_DEFAULT_PROVIDER": name})


def run_llm_command(facade: SyncLLMManager, words: Sequence[str], *, persist: bool) -> int:
    """Run ``providers``, ``switch NAME``, ``stats ...``, ``test NAME`` or ``cache stats|clear [NAME]``."""
    from patcode_core.safe_text import printable
    from patcode_core.terminal.render import answer_text, providers_block

    usage = t("cli.llm_usage", prefix="patcode llm" if persist else "/llm")
    if not words:
        print(usage, file=sys.stderr)
        return EXIT_USAGE
    command, args = words[0], list(words[1:])
    if command == "providers" and not args:
        rows = facade.providers_status()
        print(providers_block(rows))
        return EXIT_OK if any(row.available for row in rows) else EXIT_FAILED
    if command == "stats":
        return _stats(facade, args, "patcode llm stats" if persist else "/llm stats")
    if command == "cache" and args and args[0] in ("stats", "clear") and len(args) <= 2:
        return _cache(facade, args)
    if command == "switch" and len(args) == 1:
        name = facade.switch(args[0])
        print(t("cli.switched", provider=printable(name)))
        if not facade.manager.is_configured(name):
            print(t("cli.switched_unconfigured", provider=name), file=sys.stderr)
        if persist:
            persist_default_provider(name, Path(ENV_FILE))
            print(t("cli.switch_saved", provider=name, file=ENV_FILE))
            if os.environ.get("LLM_DEFAULT_PROVIDER"):
                print(t("cli.switch_env_overrides"), file=sys.stderr)
        return EXIT_OK
    if command == "test" and len(args) == 1:
        result = facade.test(args[0])
        print(t("cli.test_ok", provider=printable(result.provider), model=printable(result.model), seconds=f"{result.latency:.2f}"))
        print(answer_text(result).strip())
        return EXIT_OK
    print(usage, file=sys.stderr)
    return EXIT_USAGE


def plot_install_command() -> str:
    """The command that installs what ``--plot`` needs into the Python running PatCode, for this install.

    A checkout installed in editable mode gets its own ``[plot]`` extra by path
    (``patcode-core`` is not on PyPI); any other install gets matplotlib itself.
    """
    import shlex
    import tomllib

    python = shlex.quote(sys.executable)
    root = Path(__file__).resolve().parents[2]  # patcode_core/terminal/cli.py -> the checkout
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        project = {}
    if project.get("name") == "patcode-core" and "plot" in project.get("optional-dependencies", {}):
        return f"{python} -m pip install -e {shlex.quote(f'{root}[plot]')}"
    return f"{python} -m pip install matplotlib"


def _stats(facade: SyncLLMManager, words: list[str], command: str = "/llm stats") -> int:
    """``llm stats``: the block, ``--json``, ``--plot``, or ``reset`` after confirmation."""
    import json

    from patcode_core.accounting.history import parse_since
    from patcode_core.terminal.render import stats_block

    try:
        options = _stats_parser().parse_args(words)
    except (argparse.ArgumentError, SystemExit):
        print(t("cli.stats_usage", command=command), file=sys.stderr)
        return EXIT_USAGE
    manager = facade.manager
    if options.action == "reset":
        if not options.yes and not _confirm(t("cli.stats_reset_confirm")):
            print(t("cli.stats_reset_kept"))
            return EXIT_OK
        print(t("cli.stats_reset_done", rows=manager.clear_history()))
        return EXIT_OK
    try:
        since = parse_since(options.since) if options.since else None
    except ValueError:
        print(t("cli.bad_since", value=options.since), file=sys.stderr)
        return EXIT_USAGE
    figures = manager.usage_summary(since, options.provider)
    if options.plot:
        from patcode_core.accounting.history import plot

        try:
            path = plot(manager.usage.store, Path(options.plot), since, options.provider)
        except ImportError:
            print(t("cli.plot_needs_matplotlib", command=plot_install_command()), file=sys.stderr)
            return EXIT_USAGE
        print(t("cli.plot_written", file=path))
        return EXIT_OK
    if options.json:
        # ASCII JSON: a model name with control or bidi characters reaches the terminal escaped.
        from dataclasses import asdict

        limits = [{"provider": name, "model": model, **asdict(found)} for name, model, found in manager.limits_in_force()]
        print(json.dumps({"providers": [usage.as_dict() for usage in figures], "since": since, "stream_limits": limits},
                         ensure_ascii=True, indent=2))
        return EXIT_OK
    print(stats_block(manager, figures))
    if not manager.usage.persistent:
        print(t("cli.stats_memory_only"), file=sys.stderr)
    return EXIT_OK


def _cache(facade: SyncLLMManager, words: list[str]) -> int:
    """``llm cache stats`` (entries and hits per provider) or ``llm cache clear [NAME]``."""
    from patcode_core.safe_text import printable
    from patcode_core.terminal.render import answers_count, count_of, size_text

    store = facade.manager.usage.store
    if words[0] == "clear":
        print(t("cli.cache_cleared", answers=answers_count(store.clear_cache(words[1] if len(words) > 1 else None))))
        return EXIT_OK
    from patcode_core.accounting.history import cache_summary

    rows = cache_summary(store)
    enabled = ", ".join(sorted(facade.manager.usage.cache_for))
    print(t("cli.cache_title", providers=enabled) if enabled else t("cli.cache_title_off"))
    for row in rows:
        hits = count_of(row.hits, "cli.hits_one", "cli.hits_many")
        line = t("cli.cache_row", provider=printable(row.provider), answers=answers_count(row.entries),
                 size=size_text(row.size_bytes), hits=hits)
        print("  " + line)
    if not rows:
        print("  " + t("cli.cache_empty"))
    return EXIT_OK


def _confirm(question: str) -> bool:
    try:
        answer = input(f"{question} {t('cli.confirm_choices')} ").strip().lower()
    except EOFError:
        return False
    return answer in t("cli.confirm_yes").split(",")


def slash_command(facade: SyncLLMManager, agent: PatAgent, line: str) -> bool:
    """Handle one ``/command``; returns False when the session should end."""
    words = line[1:].split()
    command = words[0].lower() if words else ""
    if command in ("exit", "quit", "salir"):
        return False
    if command == "help":
        off = facade.manager.settings.llm.stats_store == "off"
        print(t("cli.repl_help", stats=t("cli.repl_help_stats_session" if off else "cli.repl_help_stats_all")))
    elif command == "clear":
        agent.clear()
        print(t("cli.cleared"))
    elif command == "llm":
        guard(lambda: run_llm_command(facade, words[1:], persist=False))
    else:
        from patcode_core.safe_text import printable

        print(t("cli.unknown_command", command=printable(line.split()[0])), file=sys.stderr)
    return True


def interactive(facade: SyncLLMManager) -> int:
    """The interactive session (see :mod:`patcode_core.terminal.repl`)."""
    from patcode_core.terminal.repl import run_session

    return run_session(facade, lambda line, agent: slash_command(facade, agent, line))


def _chat(facade: SyncLLMManager, args: argparse.Namespace) -> int:
    """``patcode chat``: streamed on a terminal, printed whole into a pipe."""
    options = {"provider": args.provider, "model": args.model, "fallback": False if args.no_fallback else None}
    if sys.stdout.isatty():
        from patcode_core.log import before_each_line
        from patcode_core.safe_text import colors_on
        from patcode_core.terminal.console import AnswerPrinter

        printer = AnswerPrinter(sys.stdout, color=colors_on(sys.stdout), max_tokens=facade.manager.settings.llm.max_tokens)
        before_each_line(printer.break_line)  # a log line never lands glued to the streamed text
        try:
            for event in facade.stream(args.prompt, **options):
                printer.show(event)
        except (KeyboardInterrupt, Exception):
            printer.interrupted()  # "Interrumpido." or the error goes on a line of its own
            raise
        finally:
            before_each_line(None)
        return EXIT_OK
    _print_answer(facade, facade.complete(args.prompt, **options))
    return EXIT_OK


def _plugins(facade: SyncLLMManager, args: argparse.Namespace) -> int:
    """``patcode plugins``: the installed plugins; ``patcode plugins new NAME``: a plugin skeleton."""
    from patcode_core.terminal.plugins_cli import installed_plugins, plugins_block, write_skeleton

    if args.action != "new":
        rows = installed_plugins(facade.manager.host)
        print(plugins_block(rows))
        return EXIT_FAILED if any(row.error for row in rows) else EXIT_OK
    if not args.name:
        raise UsageError(t("plugins.name_needed"), t("plugins.name_hint"))
    try:
        root = write_skeleton(args.name, Path(args.dir))
    except ValueError as exc:
        raise UsageError(str(exc), t("plugins.name_hint")) from None
    except FileExistsError as exc:
        raise UsageError(t("plugins.exists", path=str(exc)), t("plugins.exists_hint")) from None
    print(t("plugins.created", path=root, name=args.name.strip().lower()))
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "llm" and any(word in ("-h", "--help") for word in args.words):  # patcode llm stats --help
        print(args.llm_help(), end="")
        return EXIT_OK
    if args.command == "serve":  # builds its own manager, closed when the server stops
        from patcode_core.gateway.serve import run

        return run(args.host, args.port)
    facade = _facade()
    try:
        if args.command == "chat":
            return _chat(facade, args)
        if args.command == "llm":
            return run_llm_command(facade, args.words, persist=True)
        if args.command == "plugins":
            return _plugins(facade, args)
        return interactive(facade)
    finally:
        facade.close()


def _tolerant_streams() -> None:
    """Never die on text the terminal cannot encode or input that is not UTF-8.

    Output is cleaned before it is printed (:mod:`patcode_core.safe_text`);
    this is the last net. Lines read from a pipe that are not UTF-8 keep
    their bytes as surrogates, which the prompt check turns into a usage error.
    """
    for stream, errors in ((sys.stdout, "backslashreplace"), (sys.stderr, "backslashreplace"), (sys.stdin, "surrogateescape")):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors=errors)
            except (ValueError, OSError):  # a detached or closed stream
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``patcode``; never shows a traceback unless ``PATCODE_DEBUG=1``."""
    _tolerant_streams()
    from patcode_core import plugin_guard

    plugin_guard.HARD_EXIT = True  # a plugin stuck in C code on the event loop ends the command, not hangs it
    args = _parser().parse_args(argv)
    try:
        return guard(lambda: _dispatch(args))
    except KeyboardInterrupt:
        print(t("cli.interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last net: a readable line, the traceback only on request
        if os.environ.get("PATCODE_DEBUG"):
            traceback.print_exc()
        from patcode_core.plugins import describe_exception
        from patcode_core.terminal.render import error_text

        print(error_text(t("error.unexpected", error=describe_exception(exc))), file=sys.stderr)
        return EXIT_FAILED
