"""How many wrong tokens the page's login takes from one address before it stops listening for a while.

Wrong tokens are counted per client address, in memory, for the
``max_clients`` addresses seen most recently (the oldest forgotten first).
``max_failures`` of them within ``window`` seconds lock that address out for
``window`` seconds: its logins are refused before the token is compared, the
right token included. A right token clears the address's count. Only the
page's login is limited; the API's bearer token is not.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_FAILURES = 5
WINDOW = 60.0
MAX_CLIENTS = 1024


@dataclass
class _Record:
    """One address: when its recent wrong tokens came (clock seconds), and until when it is locked out."""

    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginLimit:
    """The failed-login counters of one gateway.

    :param max_failures: wrong tokens within ``window`` that lock an address out.
    :param window: seconds the failures are counted over, and the lockout lasts.
    :param max_clients: addresses tracked at most (least recently seen dropped beyond).
    :param clock: seconds from an arbitrary origin; tests pass a fake one.
    """

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._clients: OrderedDict[str, _Record] = OrderedDict()

    def __len__(self) -> int:
        """How many addresses are tracked now."""
        return len(self._clients)

    def retry_after(self, client: str) -> int:
        """Whole seconds (at least 1) until ``client`` may try again; 0 when it may try now."""
        record = self._clients.get(client)
        left = 0.0 if record is None else record.locked_until - self.clock()
        if left <= 0:
            return 0
        self._clients.move_to_end(client)  # an address still knocking stays tracked
        return max(1, math.ceil(left))

    def failed(self, client: str) -> int:
        """Count one wrong token from ``client``; the lockout in seconds it starts, else 0."""
        now = self.clock()
        record = self._clients.pop(client, None) or _Record()
        record.failures = [at for at in record.failures if now - at < self.window] + [now]
        started = 0
        if len(record.failures) >= self.max_failures:
            record.failures, record.locked_until = [], now + self.window
            started = max(1, math.ceil(self.window))
        self._clients[client] = record
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return started

    def succeeded(self, client: str) -> None:
        """A right token from ``client``: forget its failures."""
        self._clients.pop(client, None)
