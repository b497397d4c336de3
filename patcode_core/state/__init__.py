"""State that several PatCode instances share (``LLM_STATE_URL=redis://…``), and the in-process state behind it.

:class:`SharedState` keeps requests-per-minute budgets, quota blocks, circuits and their probes, learned
latency, the response cache and the routing counters in Redis; :class:`LocalState` has the same methods in
memory, and answers whenever Redis cannot.
"""

from __future__ import annotations

from patcode_core.state.base import CLOSED, HALF_OPEN, OPEN, CircuitState
from patcode_core.state.local import LocalState
from patcode_core.state.shared import SharedState, masked_url

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitState", "LocalState", "SharedState", "masked_url"]
