"""groq_payloads.py, shared by the wire and conformance tests, is imported from this folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
