"""Hard and soft limits from config: engineers know their machine's limits better than any statistic."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import Detector

OK, SOFT, HARD = 0, 1, 2


class Limits(Detector):
    """Score 0 inside the limits, 1 beyond a soft limit, 2 beyond a hard limit. Nothing is learnt."""

    __slots__ = ("_hi", "_lo", "_shi", "_slo")

    name = "limits"
    threshold = 1.0
    warmup = 0

    def __init__(self, low: float | None = None, high: float | None = None, soft_low: float | None = None,
                 soft_high: float | None = None) -> None:
        inf = float("inf")
        self._lo = -inf if low is None else low
        self._hi = inf if high is None else high
        self._slo = -inf if soft_low is None else soft_low
        self._shi = inf if soft_high is None else soft_high

    def check(self, x: float) -> int:
        if x < self._lo or x > self._hi:
            return HARD
        if x < self._slo or x > self._shi:
            return SOFT
        return OK

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        return float(self.check(x))

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        return None

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        return None
