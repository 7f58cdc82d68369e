"""Hotelling T^2 (Mahalanobis distance) of an asset's smoothed signal vector against a rolling, shrunk covariance.

Catches faults that break the relation between signals while each stays inside its own range: current up
while flow is down (a closed valve), vibration up at constant load. numpy is used once per row and once per
refit; never per scalar. Covariance is estimated on standardised signals and shrunk toward the identity
(i.e. toward the diagonal covariance), which keeps it invertible with few rows or collinear signals.

Rows are smoothed first (EWMA with weight `smoothing` on the newest row, a multivariate EWMA chart): a small
shift that lasts becomes visible above the row-to-row noise, and the baseline window holds smoothed rows, so
the covariance is that of what is scored. Plant rows are autocorrelated and drift, so the chi-square law of
T^2 is far too light-tailed on real data (on SKAB 28 % of normal rows had a chi-square tail below 1e-3). The
row's tail probability is therefore the larger of two honest tails:

* the F law of a new observation against a covariance estimated from m rows, with m the window's effective
  number of independent rows (n * smoothing / (2 - smoothing) for EWMA-smoothed rows): on plain noise this
  is what the tail really is;
* an empirical tail from the T^2 values (as F values, so that young and full windows compare) the detector
  recently gave to rows it accepted as normal: peaks over threshold, an exponential tail fitted above their
  90th percentile, refitted every few rows. A row must be rare relative to this asset's own recent normal
  rows, not relative to an ideal Gaussian. Rows rarer than 1e-4 do not teach it (a fault must not teach the
  detector that faults are normal).

The first window is learnt whole: a detector that has seen `warmup` rows cannot yet tell a fault from normal
variation, and holding rows back then froze the baseline on its first few minutes. After that, rows with a
chi-square tail <= 1 - threshold are kept out of the baseline; after `rebaseline_after` of them in a row the
held rows become the new baseline.

An episode can also end with a return to a new operating point: after a fault the signals that drove it come
back while slow ones stay elsewhere (a motor or fluid a few degrees off once a valve reopens), and the baseline
frozen before the fault would hold the alarm until `rebaseline_after`. The drivers are the signals with at
least 20 % of the positive contributions at the episode's peak T^2 (the signals the engine names). When, for
`recover_after` rows in a row while rows are still held, every driver is back (its standardised deviation at
most `recover_fraction` of its peak deviation and within the single-signal limit of the keep-out tail, 3.9 sd
for threshold 0.9999, and its contribution at most `recover_fraction`^2 of its peak contribution), the
baseline is re-centred: the window's other signals are shifted to their mean over those rows, the drivers'
levels and the covariance are kept, and the held rows are dropped. A fault that holds its level keeps its
drivers out (a broken relation keeps its contribution), and one that settles after a sharp start stays
flagged while its driver stays beyond its limit. State is saved whole (window, fit, smoothed row,
calibration, the episode's peak), so a restore continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from edgeslm.detect.base import SCORE_CAP
from edgeslm.detect.rolling import pack, unpack

_SQRT1_2 = 1.0 / math.sqrt(2.0)
POT_TAIL = 0.1  # fraction of recent normal F values above the peaks-over-threshold level
CALIB_EVERY = 10  # rows between refits of the empirical tail
CALIB_RARITY = 1e-4  # rows rarer than this do not teach the empirical tail
DRIVER_SHARE = 0.2  # share of the positive contributions at an episode's peak that makes a signal a driver


def chi2_tail(t2: float, dof: int) -> float:
    """P(X >= t2) for X ~ chi-square(dof), Wilson-Hilferty (good to a few % of p in the far tail)."""
    if t2 <= 0.0:
        return 1.0
    a = 2.0 / (9.0 * dof)
    z = ((t2 / dof) ** (1.0 / 3.0) - (1.0 - a)) / math.sqrt(a)
    return max(0.5 * math.erfc(z * _SQRT1_2), 1e-300)


def f_tail(f: float, d1: float, d2: float) -> float:
    """P(X >= f) for X ~ F(d1, d2), Paulson's normal approximation (cube roots, as Wilson-Hilferty)."""
    if f <= 0.0:
        return 1.0
    a = 2.0 / (9.0 * d1)
    b = 2.0 / (9.0 * d2)
    c = f ** (1.0 / 3.0)
    z = ((1.0 - b) * c - (1.0 - a)) / math.sqrt(a + b * c * c)
    return max(0.5 * math.erfc(z * _SQRT1_2), 1e-300)


def chi2_quantile(tail: float, dof: int) -> float:
    """The t2 with chi2_tail(t2, dof) == tail (Wilson-Hilferty, the inverse of chi2_tail)."""
    a = 2.0 / (9.0 * dof)
    z = NormalDist().inv_cdf(1.0 - tail)
    return dof * max(1.0 - a + z * math.sqrt(a), 0.0) ** 3


class Hotelling:
    """Rolling-window Hotelling T^2 over `dim` signals; score_one/update take one row (a value per signal)."""

    __slots__ = (
        "_buf", "_cal", "_cal_i", "_cal_n", "_calib_min", "_eff", "_ep", "_f", "_filled", "_held", "_i", "_isd",
        "_mu", "_n", "_pot", "_prec", "_since_cal", "_since_fit", "_t2_keep", "_z", "_z_keep", "calibration_window",
        "dim", "p", "rebaseline_after", "recover_after", "recover_fraction", "refit_every", "shrinkage", "smoothing",
        "tail_threshold", "warmup", "window",
    )

    name = "multivariate"

    def __init__(self, dim: int, window: int = 400, warmup: int = 100, shrinkage: float = 0.1,
                 refit_every: int = 50, threshold: float = 0.9999, rebaseline_after: int = 600,
                 smoothing: float = 0.3, calibration_window: int = 1000, recover_after: int = 30,
                 recover_fraction: float = 0.25) -> None:
        self.dim = dim
        self.window = window
        self.warmup = warmup
        self.shrinkage = shrinkage
        self.refit_every = refit_every
        self.tail_threshold = 1.0 - threshold
        self._t2_keep = chi2_quantile(self.tail_threshold, dim)  # rows at or beyond it are kept out
        self.rebaseline_after = rebaseline_after
        self.recover_after = recover_after
        self.recover_fraction = recover_fraction
        self._z_keep = NormalDist().inv_cdf(1.0 - self.tail_threshold / 2.0)  # single-signal keep-out limit, sd
        # held episode: [peak T2, driver indices, their |deviation| and contribution at the peak, rows back]
        self._ep: list[Any] | None = None
        self.smoothing = smoothing
        self._eff = smoothing / (2.0 - smoothing)  # effective independent rows per row of an EWMA of noise
        self.calibration_window = calibration_window
        self._calib_min = max(20, calibration_window // 5)
        self._buf = np.zeros((0, dim))  # both rings grow as rows arrive (_grown)
        self._n = 0
        self._i = 0
        self._since_fit = 0
        self._filled = False
        self._held: list[list[float]] = []
        self._z: np.ndarray | None = None  # smoothed row
        self._cal = np.zeros(0)  # ring of F values of recent normal rows
        self._cal_n = 0
        self._cal_i = 0
        self._since_cal = 0
        self._pot: tuple[float, float] | None = None  # (level u, mean excess beta) of the empirical tail
        self._f: tuple[float, float] = (1.0, dim + 2.0)  # (c, m) of the F law, see _f_scale
        self._mu: np.ndarray | None = None
        self._isd: np.ndarray | None = None  # 1 / standard deviation
        self._prec: np.ndarray | None = None
        self.p = 1.0  # tail probability of the last row given to update (1.0 while warming up)

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
        self._mu, self._isd = mu, 1.0 / sd
        self._prec = np.linalg.pinv(shrunk, hermitian=True)
        self._since_fit = 0
        self._f = self._f_scale()
        self._fit_calibration()

    def _f_scale(self) -> tuple[float, float]:
        """(c, m): T^2 of a new row ~ c * F(dim, m - dim) against a covariance from m effective rows."""
        p = self.dim
        m = max(self._n * self._eff, p + 2.0)
        return p * (m + 1.0) * (m - 1.0) / (m * (m - p)), m

    def _fit_calibration(self) -> None:
        self._since_cal = 0
        self._pot = None
        n = self._cal_n
        if n >= self._calib_min:
            k = int((1.0 - POT_TAIL) * (n - 1))
            part = np.partition(self._cal[:n], k)
            u = float(part[k])
            top = part[k + 1:]
            excess = top[top > u] - u
            beta = float(excess.mean()) if excess.size else 0.0
            if beta > 0.0:
                self._pot = (u, beta)

    def _push(self, row: np.ndarray) -> None:
        if self._i >= len(self._buf):  # once per doubling; no call per row
            self._buf = _grown(self._buf, self._i + 1, self.window, 8)
        self._buf[self._i] = row
        self._i = (self._i + 1) % self.window
        self._n = min(self._n + 1, self.window)
        if self._n == self.window:
            self._filled = True
        self._since_fit += 1
        if self._n >= self.warmup and (self._prec is None or self._since_fit >= self.refit_every):
            self._fit()

    def _smooth(self, row: Sequence[float]) -> np.ndarray:
        x = np.array(row, dtype=float)
        z = self._z
        if z is None or self.smoothing >= 1.0:
            return x
        x -= z
        x *= self.smoothing
        x += z
        return x

    def _explain(self, z: np.ndarray) -> tuple[float, list[float]] | None:
        if self._prec is None or self._n < self.warmup:
            return None
        d = (z - self._mu) * self._isd
        contrib = (d * (self._prec @ d)).tolist()
        t2 = sum(contrib)
        if not math.isfinite(t2):
            t2 = SCORE_CAP
        return min(max(t2, 0.0), SCORE_CAP), contrib

    def explain(self, row: Sequence[float]) -> tuple[float, list[float]] | None:
        """(T^2, per-signal contributions summing to T^2) of this row (smoothed with the recent ones, not
        learnt); None while warming up."""
        return self._explain(self._smooth(row))

    def score_one(self, row: Sequence[float], ts: float = 0.0) -> float | None:
        r = self.explain(row)
        return None if r is None else r[0]

    def learn_one(self, row: Sequence[float], ts: float = 0.0) -> None:
        self.update(row, ts)

    def update(self, row: Sequence[float], ts: float = 0.0) -> tuple[float, list[float]] | None:
        """Score then learn; far-out rows stay out of the baseline until the change has lasted. The row's
        tail probability is left in `p`."""
        z = self._smooth(row)
        self._z = z
        r = self._explain(z)
        if r is None:
            self.p = 1.0
            self._push(z)
            return None
        t2 = r[0]
        self.p = p = self.tail(t2)
        if not self._filled or t2 < self._t2_keep:
            self._held = []
            self._ep = None
            if self.calibration_window and p > CALIB_RARITY:
                # as an F value, so that rows scored against a young window compare with later ones
                if self._cal_i >= len(self._cal):
                    self._cal = _grown(self._cal, self._cal_i + 1, self.calibration_window, 16)
                self._cal[self._cal_i] = t2 / self._f[0]
                self._cal_i = (self._cal_i + 1) % self.calibration_window
                self._cal_n = min(self._cal_n + 1, self.calibration_window)
            self._push(z)
        else:
            self._held.append(z.tolist())
            if self.recover_after and self._recovered(z, t2, r[1]):
                self._recentre()
            elif len(self._held) >= self.rebaseline_after:
                held, self._held = self._held, []
                self._ep = None
                self._n = self._i = 0
                self._prec = None
                for h in held[-self.window:]:
                    self._push(np.asarray(h, dtype=float))
        self._since_cal += 1
        if self._since_cal >= CALIB_EVERY:
            self._fit_calibration()
        return r

    def _recovered(self, z: np.ndarray, t2: float, contrib: list[float]) -> bool:
        """Track the held episode's peak and drivers; True once the drivers have been back for recover_after rows."""
        assert self._mu is not None and self._isd is not None
        d = ((z - self._mu) * self._isd).tolist()
        ep = self._ep
        if ep is None or t2 > ep[0]:
            pos = sum(c for c in contrib if c > 0.0) or 1.0
            drv = [k for k, c in enumerate(contrib) if c / pos >= DRIVER_SHARE]
            self._ep = [t2, drv, [abs(d[k]) for k in drv], [contrib[k] for k in drv], 0]
            return False
        f = self.recover_fraction
        back = all(abs(d[k]) <= min(f * pd, self._z_keep) and contrib[k] <= f * f * pc
                   for k, pd, pc in zip(ep[1], ep[2], ep[3], strict=True))
        ep[4] = ep[4] + 1 if back else 0
        return bool(ep[4] >= self.recover_after)

    def _recentre(self) -> None:
        """A new operating point after the fault: shift the window's non-driver signals to the recent held rows'
        mean (drivers and covariance kept), refit, drop the held rows."""
        assert self._ep is not None and self._mu is not None
        delta = np.asarray(self._held[-self.recover_after:], dtype=float).mean(axis=0) - self._mu
        delta[self._ep[1]] = 0.0
        self._buf[: self._n] += delta
        self._fit()
        self._held = []
        self._ep = None

    def tail(self, t2: float) -> float:
        """Tail probability of a T^2 value: the larger of the F tail (effective rows) and the empirical tail."""
        c, m = self._f
        f = t2 / c
        p_f = f_tail(f, self.dim, m - self.dim)
        pot = self._pot
        if pot is None:
            return p_f
        u, beta = pot
        return max(p_f, POT_TAIL * math.exp((u - f) / beta) if f > u else POT_TAIL)

    def get_state(self) -> dict[str, Any]:
        # Arrays packed (base64 of little-endian doubles): the row window is most of an asset's state file.
        fit = (None if self._prec is None or self._mu is None or self._isd is None else
               {"mu": self._mu.tolist(), "isd": self._isd.tolist(), "prec": self._prec.tolist()})
        ep = self._ep
        return {"dim": self.dim, "held": self._held, "window": self.window,
                "episode": None if ep is None else [ep[0], list(ep[1]), list(ep[2]), list(ep[3]), ep[4]],
                "buf": _pack(self._buf[: self._n]), "i": self._i, "since_fit": self._since_fit,
                "filled": self._filled, "z": None if self._z is None else self._z.tolist(), "fit": fit,
                "calibration_window": self.calibration_window, "cal": _pack(self._cal[: self._cal_n]),
                "cal_i": self._cal_i, "since_cal": self._since_cal,
                "pot": None if self._pot is None else list(self._pot)}

    def set_state(self, state: dict[str, Any]) -> None:
        if int(state["dim"]) != self.dim:
            raise ValueError("multivariate state has a different number of signals")
        self._held = [list(map(float, h)) for h in state.get("held", [])]
        ep = state.get("episode")  # absent in older state files: the episode's peak is tracked from the next row
        self._ep = (None if ep is None else
                    [float(ep[0]), [int(k) for k in ep[1]], [float(v) for v in ep[2]], [float(v) for v in ep[3]],
                     int(ep[4])])
        z = state.get("z")
        self._z = None if z is None else np.asarray(z, dtype=float)
        cal = _unpack(state.get("cal", [])).tolist()
        same_cal = state.get("calibration_window") == self.calibration_window
        if not same_cal:  # oldest first, the newest that fit
            j = int(state.get("cal_i", 0))
            cal = (cal[j:] + cal[:j])[-self.calibration_window:] if self.calibration_window else []
        self._cal_n = len(cal)
        self._cal = _grown(self._cal, self._cal_n, self.calibration_window, 16)
        self._cal[: self._cal_n] = cal
        self._cal_i = int(state["cal_i"]) if same_cal else self._cal_n % max(self.calibration_window, 1)
        buf = _unpack(state["buf"]).reshape(-1, self.dim) if "buf" in state else None
        if state.get("window") == self.window and buf is not None:
            # Same layout: restore exactly (the fit and the empirical tail as they were), keep the schedules.
            self._n = len(buf)
            if self._n:
                self._buf = _grown(self._buf, self._n, self.window, 8)
                self._buf[: self._n] = buf
            self._i = int(state["i"])
            self._filled = bool(state.get("filled", self._n == self.window))
            self._prec = None
            fit = state.get("fit")
            if fit is not None and "isd" in fit and self._n >= self.warmup:
                self._mu = np.asarray(fit["mu"], dtype=float)
                self._isd = np.asarray(fit["isd"], dtype=float)
                self._prec = np.asarray(fit["prec"], dtype=float).reshape(self.dim, self.dim)
                self._f = self._f_scale()
            elif self._n >= self.warmup:
                self._fit()
            self._since_fit = int(state["since_fit"])
            pot = state.get("pot", False)
            if pot is False or not same_cal:
                self._fit_calibration()
            else:
                self._pot = None if pot is None else (float(pot[0]), float(pot[1]))
            self._since_cal = int(state.get("since_cal", 0))
            return
        # Another window size: replay the rows (the fit and the empirical tail are re-estimated).
        self._n = self._i = 0
        self._prec = None
        self._filled = False
        if "rows" in state:  # written before the state was packed
            rows = np.asarray(state["rows"], dtype=float).reshape(-1, self.dim)
        elif buf is not None and len(buf) == int(state["window"]):
            rows = np.roll(buf, -int(state["i"]), axis=0)  # oldest first
        else:
            rows = buf if buf is not None else np.empty((0, self.dim))
        for r in rows[-self.window:]:
            self._push(np.asarray(r, dtype=float))
        self._filled = self._filled or bool(state.get("filled", False))
        self._fit_calibration()


def _grown(a: np.ndarray, n: int, cap: int, least: int) -> np.ndarray:
    """`a` with room for at least n rows (doubling, at least `least`, at most `cap`), the rows it holds kept; `a`
    itself when it has the room. The window and the calibration ring grow this way as rows arrive: a new asset's
    detector holds a few rows, not its full window and ring (40 KB at 10 signals), until it has seen them."""
    if n <= len(a):
        return a
    grown = np.zeros((min(max(n, 2 * len(a), least), cap), *a.shape[1:]))
    grown[: len(a)] = a
    return grown


def _pack(a: np.ndarray) -> str:
    return pack(np.ascontiguousarray(a, dtype=float).tobytes())


def _unpack(v: str | list[Any]) -> np.ndarray:
    """Inverse of `_pack`; a plain (nested) list is what older state files hold."""
    if isinstance(v, list):
        return np.asarray(v, dtype=float).ravel() if v else np.empty(0)
    return np.frombuffer(unpack(v), dtype=float)
