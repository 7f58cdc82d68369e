"""Calibrated anomaly likelihood: how unusual the recent raw scores are against their own history.

Raw detector scores live on different scales per signal (a noisy vibration channel fires z=4 daily, a
temperature never does). As in Numenta's anomaly likelihood (Ahmad et al. 2017), the mean of the last few
raw scores is compared with the distribution of its raw scores over about `long_window` samples (mean and
spread as exponentially weighted moments, Gaussian tail), so one threshold on the
result means the same rarity on every signal. The tail probability is kept (not 1 - p) for precision.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from edgeslm.detect.rolling import EwMoments

_SQRT1_2 = 1.0 / math.sqrt(2.0)
MIN_TAIL = 1e-300


class AnomalyLikelihood:
    __slots__ = ("_long", "_short", "_si", "_ssum", "short_window", "warmup")

    def __init__(self, long_window: int = 2000, short_window: int = 5, warmup: int = 150) -> None:
        self._long = EwMoments(long_window)  # 3 floats, not a buffer
        self.short_window = short_window
        self.warmup = warmup
        self._short = array("d")  # ring of the last short_window raw scores (no float objects)
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
        return {"long": self._long.get_state(), "short": (sh[self._si:] + sh[: self._si]).tolist(),
                "ssum": self._ssum}

    def set_state(self, state: dict[str, Any]) -> None:
        self._long.set_state(state["long"])
        self._short = array("d", [float(v) for v in state["short"]][-self.short_window:])
        self._si = 0
        # The running sum as it was (not a fresh fsum), so that a restored engine continues bit-for-bit.
        self._ssum = float(state["ssum"]) if "ssum" in state and len(state["short"]) == len(self._short) \
            else math.fsum(self._short)


def nines(p: float) -> float:
    """Surprise of a tail probability in 'nines' of likelihood: p=1e-4 (likelihood 0.9999) -> 4."""
    return -math.log10(p) if p > MIN_TAIL else 300.0


class EventRate:
    """Calibration of a rare yes/no event (a never-seen level): binomial tail of the recent count of events.

    The event rate r is learnt over the last `long_window` samples (with a +1/+2 prior, so a quiet history
    still leaves room for surprise); the tail probability is P(X >= k) for X ~ Binomial(short_window, r),
    k = events among the last `short_window` samples. A signal that often reaches new levels (noise, drift)
    learns a high rate and stops alarming on them; a steady one alarms when a few come together. Events are
    rare, so only their sample numbers are kept: a sample without a recent event costs one comparison.
    """

    __slots__ = ("_ev", "_n", "long_window", "short_window", "warmup")

    def __init__(self, long_window: int = 2000, short_window: int = 5, warmup: int = 150) -> None:
        self.long_window = long_window
        self.short_window = short_window
        self.warmup = warmup
        self._n = 0
        # sample numbers of the events in the long window, ascending; array('q'): 8 bytes an event, no int objects
        self._ev = array("q")

    def update(self, event: bool) -> float:
        """Add one sample's event flag; return the tail probability of the recent count (0.5 in warm-up)."""
        n = self._n
        self._n = n + 1
        ev = self._ev
        if event:
            ev.append(n)
        elif not ev or ev[-1] <= n - self.short_window:
            return 0.5 if n < self.warmup else 1.0
        lo = n - self.long_window
        while ev[0] < lo:
            ev.pop(0)
        if n < self.warmup:
            return 0.5
        first = n - self.short_window
        k = 0
        for j in reversed(ev):
            if j <= first:
                break
            k += 1
        before = len(ev) - (1 if event else 0)  # events in the long window before this sample
        m = n if n < self.long_window else self.long_window
        p = _binom_tail(k, self.short_window, (before + 1.0) / (m + 2.0))
        return p if p > MIN_TAIL else MIN_TAIL

    def get_state(self) -> dict[str, Any]:
        return {"n": self._n, "events": self._ev.tolist()}

    def set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._ev = array("q", [int(v) for v in state["events"]])


def _binom_tail(k: int, n: int, r: float) -> float:
    """P(X >= k) for X ~ Binomial(n, r)."""
    q = 1.0 - r
    return math.fsum(math.comb(n, j) * r**j * q ** (n - j) for j in range(k, n + 1))
