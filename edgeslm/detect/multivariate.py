"""Hotelling T^2 (Mahalanobis distance) of an asset's signal vector against a rolling, shrunk covariance.

Catches faults that break the relation between signals while each stays inside its own range: current up
while flow is down (a closed valve), vibration up at constant load. numpy is used once per row and once per
refit; never per scalar. Covariance is estimated on standardised signals and shrunk toward the identity
(i.e. toward the diagonal covariance), which keeps it invertible with few rows or collinear signals.
The tail probability uses the chi-square law with the Wilson-Hilferty approximation (pure Python).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeslm.detect.base import SCORE_CAP

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def chi2_tail(t2: float, dof: int) -> float:
    """P(X >= t2) for X ~ chi-square(dof), Wilson-Hilferty (good to a few % of p in the far tail)."""
    if t2 <= 0.0:
        return 1.0
    a = 2.0 / (9.0 * dof)
    z = ((t2 / dof) ** (1.0 / 3.0) - (1.0 - a)) / math.sqrt(a)
    return max(0.5 * math.erfc(z * _SQRT1_2), 1e-300)


class Hotelling:
    """Rolling-window Hotelling T^2 over `dim` signals; score_one/update take one row (a value per signal)."""

    name = "multivariate"

    def __init__(self, dim: int, window: int = 400, warmup: int = 100, shrinkage: float = 0.1,
                 refit_every: int = 50, threshold: float = 0.9999, rebaseline_after: int = 600) -> None:
        self.dim = dim
        self.window = window
        self.warmup = warmup
        self.shrinkage = shrinkage
        self.refit_every = refit_every
        self.tail_threshold = 1.0 - threshold
        self.rebaseline_after = rebaseline_after
        self._buf = np.zeros((window, dim))
        self._n = 0
        self._i = 0
        self._since_fit = 0
        self._held: list[list[float]] = []
        self._mu: np.ndarray | None = None
        self._sd: np.ndarray | None = None
        self._prec: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self._n

    def _fit(self) -> None:
        data = self._buf[: self._n]
        mu = data.mean(axis=0)
        sd = data.std(axis=0, ddof=1)
        sd = np.where(sd > 1e-9 * (np.abs(mu) + 1.0), sd, 1e-9 * (np.abs(mu) + 1.0))
        z = (data - mu) / sd
        corr = np.cov(z, rowvar=False).reshape(self.dim, self.dim)
        shrunk = (1.0 - self.shrinkage) * corr + self.shrinkage * np.eye(self.dim)
        self._mu, self._sd = mu, sd
        self._prec = np.linalg.pinv(shrunk, hermitian=True)
        self._since_fit = 0

    def _push(self, row: Sequence[float]) -> None:
        self._buf[self._i] = row
        self._i = (self._i + 1) % self.window
        self._n = min(self._n + 1, self.window)
        self._since_fit += 1
        if self._n >= self.warmup and (self._prec is None or self._since_fit >= self.refit_every):
            self._fit()

    def explain(self, row: Sequence[float]) -> tuple[float, list[float]] | None:
        """(T^2, per-signal contributions summing to T^2); None while warming up."""
        if self._prec is None or self._n < self.warmup:
            return None
        assert self._mu is not None and self._sd is not None
        d = (np.asarray(row, dtype=float) - self._mu) / self._sd
        pd = self._prec @ d
        contrib = d * pd
        t2 = float(contrib.sum())
        if not math.isfinite(t2):
            t2 = SCORE_CAP
        return min(max(t2, 0.0), SCORE_CAP), [float(c) for c in contrib]

    def score_one(self, row: Sequence[float], ts: float = 0.0) -> float | None:
        r = self.explain(row)
        return None if r is None else r[0]

    def learn_one(self, row: Sequence[float], ts: float = 0.0) -> None:
        self._push(row)

    def update(self, row: Sequence[float], ts: float = 0.0) -> tuple[float, list[float]] | None:
        """Score then learn; anomalous rows stay out of the baseline until the change has lasted."""
        r = self.explain(row)
        if r is None or chi2_tail(r[0], self.dim) > self.tail_threshold:
            self._held = []
            self._push(row)
        else:
            self._held.append(list(row))
            if len(self._held) >= self.rebaseline_after:
                held, self._held = self._held, []
                self._n = self._i = 0
                self._prec = None
                for h in held[-self.window:]:
                    self._push(h)
        return r

    def tail(self, t2: float) -> float:
        return chi2_tail(t2, self.dim)

    def get_state(self) -> dict[str, Any]:
        rows = np.roll(self._buf, -self._i, axis=0)[-self._n:] if self._n == self.window else self._buf[: self._n]
        return {"dim": self.dim, "rows": rows.tolist(), "held": self._held, "window": self.window,
                "buf": self._buf[: self._n].tolist(), "i": self._i, "since_fit": self._since_fit}

    def set_state(self, state: dict[str, Any]) -> None:
        if int(state["dim"]) != self.dim:
            raise ValueError("multivariate state has a different number of signals")
        self._held = [list(map(float, h)) for h in state.get("held", [])]
        if state.get("window") == self.window and "buf" in state:
            # Same layout: restore exactly, refit, and keep the refit schedule.
            self._n = len(state["buf"])
            if self._n:
                self._buf[: self._n] = np.asarray(state["buf"], dtype=float)
            self._i = int(state["i"])
            self._prec = None
            if self._n >= self.warmup:
                self._fit()
            self._since_fit = int(state["since_fit"])
            return
        self._n = self._i = 0
        self._prec = None
        for r in state["rows"][-self.window:]:
            self._push(r)
