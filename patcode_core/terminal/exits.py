"""How a command ends: its exit code, and one readable block for the error that ended it."""

from __future__ import annotations

import sys
from collections.abc import Callable

from patcode_core.errors import ConfigError, PatCodeError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def guard(action: Callable[[], int]) -> int:
    """Run one command, printing a PatCodeError as a readable block (exit 2 for bad usage or settings, else 1)."""
    from patcode_core.terminal.render import error_text

    try:
        return action()
    except (ConfigError, UsageError) as error:
        print(error_text(error), file=sys.stderr)
        return EXIT_USAGE
    except PatCodeError as error:
        print(error_text(error), file=sys.stderr)
        return EXIT_FAILED


__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "guard"]
