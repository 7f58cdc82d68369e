"""Spike / rate of change: a step between consecutive samples far larger than the usual steps."""

from __future__ import annotations

from typing import Any

from edgeslm.detect.base import SCORE_CAP, Detector
from edgeslm.detect.rolling import RollingMoments


class Spike(Detector):
    """Catches sudden jumps and drops (a broken wire, a valve slamming) relative to the signal's normal jitter.

    The baseline is the RMS of recent steps; with `max_rate`, any |change| per second above it also scores as
    a breach (ratio to the threshold).
    """

    __slots__ = ("_last", "_last_ts", "_sq", "max_rate", "threshold", "warmup")

    name = "spike"

    def __init__(self, window: int = 120, warmup: int = 30, threshold: float = 6.0,
                 max_rate: float | None = None) -> None:
        self.threshold = threshold
        self.warmup = warmup
        self.max_rate = max_rate
        self._sq = RollingMoments(window)  # of squared steps: mean = mean square step
        self._last: float | None = None
        self._last_ts: float | None = None

    def _score(self, x: float, ts: float) -> float | None:
        if self._last is None:
            return None
        d = x - self._last
        score: float | None = None
        if self._sq.n >= self.warmup:
            ms = self._sq.mean
            floor = 1e-18 * (self._last * self._last + 1.0)
            score = abs(d) / (ms if ms > floor else floor) ** 0.5
        if self.max_rate is not None and self._last_ts is not None and ts > self._last_ts:
            rate = abs(d) / (ts - self._last_ts) / self.max_rate * self.threshold
            score = rate if score is None or rate > score else score
        if score is None:
            return None
        return score if score < SCORE_CAP else SCORE_CAP

    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        return self._score(x, ts)

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        if self._last is not None:
            d = x - self._last
            self._sq.push(d * d)
        self._last = x
        self._last_ts = ts

    def update(self, x: float, ts: float = 0.0) -> float | None:
        s = self._score(x, ts)
        if self._last is not None and (s is None or s < self.threshold):
            d = x - self._last
            self._sq.push(d * d)  # big steps stay out of the baseline of normal steps
        self._last = x
        self._last_ts = ts
        return s

    def get_state(self) -> dict[str, Any]:
        return {"sq": self._sq.get_state(), "last": self._last, "last_ts": self._last_ts}

    def set_state(self, state: dict[str, Any]) -> None:
        self._sq.set_state(state["sq"])
        self._last = None if state["last"] is None else float(state["last"])
        self._last_ts = None if state["last_ts"] is None else float(state["last_ts"])
