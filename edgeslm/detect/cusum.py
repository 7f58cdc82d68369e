"""Two-sided CUSUM (Page 1954) on standardised values: accumulates small deviations until they add up."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import SCORE_CAP, Detector
from edgeslm.detect.rolling import RollingMoments


class Cusum(Detector):
    """Catches slow drifts and small mean shifts (fouling, creeping temperature) that z-scores never flag."""

    __slots__ = ("_hi", "_lo", "_m", "_over", "drift", "rebaseline_after", "threshold", "warmup")

    name = "cusum"

    def __init__(self, drift: float = 0.5, threshold: float = 8.0, warmup: int = 30, window: int = 240,
                 rebaseline_after: int = 60) -> None:
        self.drift = drift
        self.threshold = threshold
        self.warmup = warmup
        self.rebaseline_after = rebaseline_after
        self._m = RollingMoments(window)
        self._hi = 0.0
        self._lo = 0.0
        self._over = 0  # samples in a row at or over the decision interval

    def _sums(self, x: float) -> tuple[float, float] | None:
        m = self._m
        if m.n < self.warmup:
            return None
        z = (x - m.mean) / m.scale
        hi = self._hi + z - self.drift
        lo = self._lo - z - self.drift
        return (hi if hi > 0.0 else 0.0), (lo if lo > 0.0 else 0.0)

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        s = self._sums(x)
        if s is None:
            return None
        v = s[0] if s[0] > s[1] else s[1]
        return v if v < SCORE_CAP else SCORE_CAP

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self._m.push(x)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        s = self._sums(x)
        if s is None:
            self._m.push(x)
            return None
        self._hi, self._lo = s
        v = s[0] if s[0] > s[1] else s[1]
        if v < self.threshold:
            self._over = 0
            self._m.push(x)
        else:
            # The shift is kept out of the baseline; once it has lasted, it is the new normal.
            self._over += 1
            if self._over >= self.rebaseline_after:
                self._over = 0
                self._hi = self._lo = 0.0
                self._m.clear()
                self._m.push(x)
        return v if v < SCORE_CAP else SCORE_CAP

    def get_state(self) -> dict[str, Any]:
        return {"window": self._m.get_state(), "hi": self._hi, "lo": self._lo, "over": self._over}

    def set_state(self, state: dict[str, Any]) -> None:
        self._m.set_state(state["window"])
        self._hi = float(state["hi"])
        self._lo = float(state["lo"])
        self._over = int(state["over"])
