"""Structured log events, rendered for people in a terminal or as JSON.

Each event has a name and key-value fields. The human renderer turns the
event into the catalogue sentence of the current language, so the terminal
shows ``[WARNING] Provider 'acme' falló: Connection timeout``; with
``PATCODE_LOG_FORMAT=json`` every event is one JSON object with its fields and
that sentence under ``message``. ``PATCODE_LOG_LEVEL`` filters (default
``info``). Logging never configures structlog globally: an application that
embeds PatCode keeps its own setup.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from patcode_core.i18n import t
from patcode_core.redact import redact
from patcode_core.safe_text import printable_line

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

# Events shown without a level prefix: success marks, as in the documentation.
_PLAIN_EVENTS = {"fallback_succeeded"}


#: Called before each log line is written (the CLI clears its spinner line there).
_before_line: list[Callable[[], None]] = []


def before_each_line(hook: Callable[[], None] | None) -> None:
    """Run ``hook`` before every log line from now on (``None`` removes it)."""
    _before_line.clear()
    if hook is not None:
        _before_line.append(hook)


class _StderrWriter:
    """Writes each rendered line to the *current* ``sys.stderr``."""

    def msg(self, message: str) -> None:
        for hook in _before_line:
            hook()
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = error = critical = exception = log = msg


def _sentence(event: str, fields: dict[str, Any]) -> str:
    try:
        return t(f"log.{event}", **fields)
    except KeyError:
        extras = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{event} {extras}".strip()


def _clean(value: Any) -> Any:
    """A field as it may be written: secrets removed, controls and newlines shown escaped."""
    return printable_line(value if isinstance(value, str) else str(value))


def _render_human(_: object, method: str, event_dict: dict[str, Any]) -> str:
    event = str(event_dict.pop("event"))
    event_dict.pop("level", None)
    sentence = _sentence(event, {key: _clean(value) for key, value in event_dict.items()})
    if event in _PLAIN_EVENTS:
        return sentence
    return f"[{method.upper()}] {sentence}"


def _render_json(_: object, method: str, event_dict: dict[str, Any]) -> str:
    event = str(event_dict.get("event"))
    fields = {k: redact(v) if isinstance(v, str) else v for k, v in event_dict.items() if k != "event"}
    record = {"level": method, "event": event, **fields, "message": _sentence(event, dict(fields))}
    # ASCII JSON: control, bidi and invisible characters travel as \u escapes, never raw.
    return redact(json.dumps(record, ensure_ascii=True, default=str))


def _build_logger(level: int, as_json: bool) -> Any:
    import structlog

    renderer = _render_json if as_json else _render_human
    # bind() turns the lazy proxy into the logger itself, so each event costs
    # one method call (a no-op below the level) instead of a fresh bind.
    return structlog.wrap_logger(
        _StderrWriter(),
        processors=[renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    ).bind()


class _Logger:
    """Reads ``PATCODE_LOG_LEVEL`` / ``PATCODE_LOG_FORMAT`` now; imports structlog at the first event.

    A command that logs nothing (``patcode llm providers`` on a healthy
    machine) never pays for the import.
    """

    def __init__(self) -> None:
        self._real: Any = None
        self._level = LEVELS.get(os.environ.get("PATCODE_LOG_LEVEL", "info").strip().lower(), LEVELS["info"])
        self._json = os.environ.get("PATCODE_LOG_FORMAT", "").strip().lower() == "json"

    def _event(self, level: str, event: str, **fields: Any) -> None:
        if LEVELS[level] < self._level:
            return
        if self._real is None:
            self._real = _build_logger(self._level, self._json)
        getattr(self._real, level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        """Log a debug event."""
        self._event("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an info event."""
        self._event("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a warning event."""
        self._event("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log an error event."""
        self._event("error", event, **fields)


def get_logger() -> Any:
    """A logger honouring ``PATCODE_LOG_LEVEL`` and ``PATCODE_LOG_FORMAT``."""
    return _Logger()
