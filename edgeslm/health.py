"""Counters shared by the threads, and the status payload built from them."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from edgeslm import __version__


class Counters:
    """Monotonic counters. `add` takes a lock: callers batch (the detector thread adds per batch)."""

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._c[name] += n

    def add_many(self, items: dict[str, int], prefix: str = "") -> None:
        with self._lock:
            for k, v in items.items():
                if v:
                    self._c[prefix + k] += v

    def get(self, name: str) -> int:
        with self._lock:
            return self._c[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._c.items()))


def status_payload(*, gateway: str, site: str, started: float, counters: dict[str, int],
                   sections: dict[str, Any]) -> dict[str, Any]:
    """The periodic retained status message: enough for an HMI tile and for an engineer's first look."""
    return {"state": "online", "gateway": gateway, "site": site, "version": __version__,
            "uptime_s": round(time.time() - started, 1), "counters": counters, **sections}
