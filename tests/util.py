"""Small test utilities with no heavy imports."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(pred: Callable[[], object], timeout: float = 10.0, step: float = 0.01) -> bool:
    """Poll `pred` until it is truthy or `timeout` seconds pass; every wait in the tests is bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())
