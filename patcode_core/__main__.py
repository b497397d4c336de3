"""``python -m patcode_core`` runs the ``patcode`` CLI."""

from patcode_core.cli import main

raise SystemExit(main())
