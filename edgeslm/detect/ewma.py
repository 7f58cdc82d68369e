"""EWMA control chart (Roberts 1959): the smoothed level leaving limits of L x sigma x sqrt(lambda/(2-lambda))."""

from __future__ import annotations

import math
from typing import Any

from edgeslm.detect.base import SCORE_CAP, Detector, Rebaseliner
from edgeslm.detect.rolling import RollingMoments

CLIP = 3.0  # baseline standard deviations


class Ewma(Detector):
    """Catches small sustained shifts of the mean that single samples hide in noise."""

    __slots__ = ("_ewma", "_k", "_m", "_rb", "alpha", "threshold", "warmup")

    name = "ewma"

    def __init__(self, alpha: float = 0.1, warmup: int = 30, threshold: float = 4.0, window: int = 240,
                 rebaseline_after: int = 60) -> None:
        self.alpha = alpha
        self.threshold = threshold
        self.warmup = warmup
        self._k = math.sqrt(alpha / (2.0 - alpha))
        self._m = RollingMoments(window)
        self._rb = Rebaseliner(rebaseline_after)
        self._ewma: float | None = None

    def _stat(self, x: float) -> float:
        e = self._ewma
        if e is None:
            return x
        m = self._m
        if m.n >= self.warmup:
            # Winsorised input: one wild spike must not hold the chart out of control for the next 20 samples.
            lim = CLIP * m.std
            mean = m.mean
            if x > mean + lim:
                x = mean + lim
            elif x < mean - lim:
                x = mean - lim
        return e + self.alpha * (x - e)

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        m = self._m
        if m.n < self.warmup:
            return None
        z = abs(self._stat(x) - m.mean) / (m.scale * self._k)
        return z if z < SCORE_CAP else SCORE_CAP

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self._ewma = self._stat(x)
        self._m.push(x)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        # Hot path: one pass over mean/std (score_one + learn_one would compute them twice).
        m = self._m
        e = self._ewma
        if m.n < self.warmup or e is None:
            self._ewma = x if e is None else e + self.alpha * (x - e)
            m.push(x)
            return None
        mean = m.mean
        std = m.std
        lim = CLIP * std
        xc = mean + lim if x > mean + lim else (mean - lim if x < mean - lim else x)
        e += self.alpha * (xc - e)
        self._ewma = e
        floor = 1e-9 * (abs(mean) + 1.0)
        s = abs(e - mean) / ((std if std > floor else floor) * self._k)
        if s > SCORE_CAP:  # noqa: PLR1730 -- hot path
            s = SCORE_CAP
        if s < self.threshold:
            self._rb.release()
            m.push(x)
        else:
            vals = self._rb.hold(x)
            if vals is not None:
                m.clear()
                for v in vals:
                    m.push(v)
                self._ewma = vals[-1]
        return s

    def get_state(self) -> dict[str, Any]:
        return {"window": self._m.get_state(), "ewma": self._ewma, "held": list(self._rb.held)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._m.set_state(state["window"])
        self._ewma = None if state["ewma"] is None else float(state["ewma"])
        self._rb.restore([float(v) for v in state.get("held", [])])
