"""What both kinds of state share: the circuit view, lifetimes, and the cleaning of what may be stored."""

from __future__ import annotations

import hashlib
import json
import re
from typing import NamedTuple

from patcode_core.redact import redact
from patcode_core.types import CachedAnswer

#: The requests-per-minute window, seconds.
RPM_WINDOW = 60.0
#: How long a circuit whose cooldown is over stays half-open (one try allowed) before it is forgotten (closed).
HALF_OPEN_KEEP = 600.0
#: Latency figures kept per provider and model, and how long they last after the last one recorded.
LATENCIES_KEPT = 200
LATENCY_TTL = 86_400.0
#: Round-robin turns are forgotten a day after the last one.
TURN_TTL = 86_400.0
#: An instance's in-flight counts vanish this long after its last change (a crashed instance stops counting).
IN_FLIGHT_TTL = 600.0
#: The longest circuit reason stored (an error kind and a short cause, never an answer or a prompt).
REASON_MAX = 120

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_HASH = re.compile(r"[0-9a-f]{32,128}")


class CircuitState(NamedTuple):
    """A provider+model circuit: ``closed``, ``open`` (``retry_in`` seconds left) or ``half_open`` (one try allowed)."""

    state: str
    retry_in: float = 0.0


class Admission(NamedTuple):
    """Whether a request may go now: ``ok``, or ``open`` / ``blocked`` / ``rpm`` with the seconds to wait."""

    verdict: str
    wait: float = 0.0


ADMITTED = Admission("ok")


def answer_json(answer: CachedAnswer) -> str:
    """A cached answer as the shared cache stores it: the answer and its counts, nothing of the request."""
    return json.dumps([answer.text, answer.finish_reason, answer.input_tokens, answer.output_tokens, answer.model])


def answer_of(stored: str | None) -> CachedAnswer | None:
    """The answer :func:`answer_json` stored, or ``None`` (nothing there, or not readable)."""
    if stored is None:
        return None
    try:
        text, finish, tokens_in, tokens_out, model = json.loads(stored)
        return CachedAnswer(str(text), finish, tokens_in, tokens_out, model)
    except (ValueError, TypeError):
        return None


def cache_id(key: str) -> str:
    """The cache key as stored: a hex digest is kept as it is; anything else is hashed, so no prompt is ever written."""
    if _HASH.fullmatch(key):
        return key
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def clean_reason(reason: str) -> str:
    """A circuit reason as it may be stored: keys and URL passwords masked, one line, at most :data:`REASON_MAX` characters."""
    return " ".join(redact(str(reason)).split())[:REASON_MAX]


def positive(seconds: float) -> float:
    """``seconds``, or 0 for a negative, ``nan`` or infinite value."""
    return seconds if seconds > 0 and seconds != float("inf") else 0.0
