"""Rolling z-score: distance of a value from the rolling mean in rolling standard deviations."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import SCORE_CAP, Detector, Rebaseliner
from edgeslm.detect.rolling import RollingMoments


class ZScore(Detector):
    """Catches sudden level changes and outliers on signals with a roughly stable mean."""

    __slots__ = ("_m", "_rb", "threshold", "warmup")

    name = "zscore"

    def __init__(self, window: int = 240, warmup: int = 30, threshold: float = 4.0,
                 rebaseline_after: int = 60) -> None:
        self.threshold = threshold
        self.warmup = warmup
        self._m = RollingMoments(window)
        self._rb = Rebaseliner(rebaseline_after)

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        m = self._m
        if m.n < self.warmup:
            return None
        z = abs(x - m.mean) / m.scale
        return z if z < SCORE_CAP else SCORE_CAP

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self._m.push(x)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        s = self.score_one(x, ts)
        if s is None or s < self.threshold:
            self._rb.release()
            self._m.push(x)
        else:
            vals = self._rb.hold(x)
            if vals is not None:
                self._m.clear()
                for v in vals:
                    self._m.push(v)
        return s

    def baseline(self) -> tuple[float, float] | None:
        return (self._m.mean, self._m.std) if self._m.n >= self.warmup else None

    def get_state(self) -> dict[str, Any]:
        return {"window": self._m.get_state(), "held": list(self._rb.held)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._m.set_state(state["window"])
        self._rb.restore([float(v) for v in state.get("held", [])])
