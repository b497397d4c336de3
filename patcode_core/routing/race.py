"""Which side of a hedged race a request is on: the router books a request that lost as ``hedged``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class Racer:
    """One side of a hedged race; ``lost`` is set before its task is cancelled."""

    lost: bool = False


#: In the task of a raced request: its :class:`Racer` (``None`` outside a race).
RACER: ContextVar[Racer | None] = ContextVar("patcode_racer", default=None)

__all__ = ["RACER", "Racer"]
