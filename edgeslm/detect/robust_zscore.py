"""Robust z-score: distance from the rolling median in MAD units (MAD x 1.4826 ~ one standard deviation)."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import SCORE_CAP, Detector, Rebaseliner
from edgeslm.detect.rolling import RollingMedian

MAD_TO_STD = 1.4826


class RobustZScore(Detector):
    """Catches outliers on heavy-tailed or spiky signals, where one outlier would inflate a mean/std baseline."""

    __slots__ = ("_rb", "_w", "threshold", "warmup")

    name = "robust_z"

    def __init__(self, window: int = 60, warmup: int = 30, threshold: float = 5.0,
                 rebaseline_after: int = 60) -> None:
        self.threshold = threshold
        self.warmup = warmup
        self._w = RollingMedian(window)
        self._rb = Rebaseliner(rebaseline_after)

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        w = self._w
        if w.n < self.warmup:
            return None
        med = w.median()
        scale = w.mad(med) * MAD_TO_STD
        floor = 1e-9 * (abs(med) + 1.0)
        z = abs(x - med) / (scale if scale > floor else floor)
        return z if z < SCORE_CAP else SCORE_CAP

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self._w.push(x)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        s = self.score_one(x, ts)
        if s is None or s < self.threshold:
            self._rb.release()
            self._w.push(x)
        else:
            vals = self._rb.hold(x)
            if vals is not None:
                self._w.clear()
                for v in vals:
                    self._w.push(v)
        return s

    def baseline(self) -> tuple[float, float] | None:
        if self._w.n < self.warmup:
            return None
        med = self._w.median()
        return med, self._w.mad(med) * MAD_TO_STD

    def get_state(self) -> dict[str, Any]:
        return {"window": self._w.get_state(), "held": list(self._rb.held)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._w.set_state(state["window"])
        self._rb.restore([float(v) for v in state.get("held", [])])
