"""``python -m patcode_core`` runs the ``patcode`` CLI."""

from patcode_core.terminal.cli import main

raise SystemExit(main())
