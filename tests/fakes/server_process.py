"""Starts provider_server.py as a real process on loopback and scripts it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

SERVER_SCRIPT = Path(__file__).with_name("provider_server.py")


class FakeProviderServer:
    """A running provider_server.py process; ``url`` is its base address."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("LISTENING "):
            self.process.kill()
            raise RuntimeError(f"fake provider server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._control = httpx.Client(base_url=self.url, timeout=5)

    def reset(self) -> None:
        self._control.post("/_control/reset").raise_for_status()

    def fault(self, route: str, *faults: dict[str, Any]) -> None:
        self._control.post("/_control/faults", json={"route": route, "faults": list(faults)}).raise_for_status()

    def clear_faults(self) -> None:
        self._control.post("/_control/clear_faults").raise_for_status()

    def configure(self, **values: Any) -> None:
        self._control.post("/_control/config", json=values).raise_for_status()

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        seen = self._control.get("/_control/requests").json()["requests"]
        return [r for r in seen if route is None or r["route"] == route]

    def stop(self) -> None:
        self._control.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
