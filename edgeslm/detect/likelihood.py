"""Calibrated anomaly likelihood: how unusual the recent raw scores are against their own history.

Raw detector scores live on different scales per signal (a noisy vibration channel fires z=4 daily, a
temperature never does). As in Numenta's anomaly likelihood (Ahmad et al. 2017), the mean of the last few
raw scores is compared with the rolling distribution of raw scores (Gaussian tail), so one threshold on the
result means the same rarity on every signal. The tail probability is kept (not 1 - p) for precision.
"""

from __future__ import annotations

import math
from typing import Any

from edgeslm.detect.rolling import RollingMoments

_SQRT1_2 = 1.0 / math.sqrt(2.0)
MIN_TAIL = 1e-300


class AnomalyLikelihood:
    __slots__ = ("_long", "_short", "_si", "_ssum", "short_window", "warmup")

    def __init__(self, long_window: int = 2000, short_window: int = 5, warmup: int = 150) -> None:
        self._long = RollingMoments(long_window)
        self.short_window = short_window
        self.warmup = warmup
        self._short: list[float] = []
        self._si = 0
        self._ssum = 0.0

    def update(self, raw: float) -> float:
        """Add a raw score (>= 0); return the tail probability of the recent mean (0.5 while warming up)."""
        sh = self._short
        if len(sh) < self.short_window:
            sh.append(raw)
            self._ssum += raw
        else:
            i = self._si
            self._ssum += raw - sh[i]
            sh[i] = raw
            self._si = i + 1 if i + 1 < self.short_window else 0
        lg = self._long
        if lg.n < self.warmup:
            lg.push(raw)
            return 0.5
        mean = lg.mean
        std = lg.std
        # A floor on the spread: after a perfectly quiet history, a tiny wobble is not a 40-sigma event.
        if std < 0.05:  # noqa: PLR1730 -- hot path
            std = 0.05
        z = (self._ssum / len(sh) - mean) / std
        lg.push(raw)
        p = 0.5 * math.erfc(z * _SQRT1_2)
        return p if p > MIN_TAIL else MIN_TAIL

    def get_state(self) -> dict[str, Any]:
        sh = self._short
        return {"long": self._long.get_state(), "short": sh[self._si:] + sh[: self._si]}

    def set_state(self, state: dict[str, Any]) -> None:
        self._long.set_state(state["long"])
        self._short = [float(v) for v in state["short"]][-self.short_window:]
        self._si = 0
        self._ssum = math.fsum(self._short)


def nines(p: float) -> float:
    """Surprise of a tail probability in 'nines' of likelihood: p=1e-4 (likelihood 0.9999) -> 4."""
    return -math.log10(p) if p > MIN_TAIL else 300.0
