"""Flatline: a stuck sensor repeats the same value (zero variance) for far longer than it normally does."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import Detector


class Flatline(Detector):
    """Catches frozen sensors, stuck PLC registers and dead transmitters that keep sending the last value.

    Quantised signals repeat values normally, so the longest run seen while learning sets the bar: a run
    must be at least `min_run` samples and `factor` x that longest normal run. Score = run / bar.
    """

    __slots__ = ("_last", "_longest", "_n", "_run", "factor", "min_run", "warmup")

    name = "flatline"
    threshold = 1.0

    def __init__(self, min_run: int = 30, factor: float = 3.0, warmup: int = 100) -> None:
        self.min_run = min_run
        self.factor = factor
        self.warmup = warmup
        self._n = 0
        self._last: float | None = None
        self._run = 0
        self._longest = 1  # longest run that ended without being anomalous

    def _bar(self) -> float:
        b = self.factor * self._longest
        return b if b > self.min_run else float(self.min_run)

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        if self._n < self.warmup:
            return None
        run = self._run + 1 if x == self._last else 1
        return run / self._bar()

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self.update(x, ts)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        s = self.score_one(x, ts)
        if x == self._last:
            self._run += 1
        else:
            if self._n < self.warmup or self._run < self._bar():
                self._longest = max(self._longest, self._run)
            self._run = 1
            self._last = x
        self._n += 1
        return s

    def get_state(self) -> dict[str, Any]:
        return {"n": self._n, "last": self._last, "run": self._run, "longest": self._longest}

    def set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._last = None if state["last"] is None else float(state["last"])
        self._run = int(state["run"])
        self._longest = int(state["longest"])
