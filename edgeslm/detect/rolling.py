"""Rolling window statistics in plain Python floats: O(1) per update, exact recompute to stop drift.

Per-sample numpy calls on scalars cost microseconds each; a ring buffer with running sums costs a few
hundred nanoseconds. Sums are kept of values shifted by a reference near the mean (less cancellation in
the variance), and recomputed exactly from the buffer once per window so rounding error cannot build up.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from bisect import bisect_left, insort
from typing import Any


def pack(a: array | bytes) -> str:
    """Doubles (an array('d'), or their native-order bytes, e.g. a numpy array's `tobytes()`) as base64 of
    little-endian doubles: 10.7 bytes a value in the state file instead of ~19 as JSON numbers, and one
    string object while saving instead of a float object per value."""
    if isinstance(a, bytes) or sys.byteorder == "big":
        a = array("d", a)
        if sys.byteorder == "big":
            a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def unpack(v: str | list[float]) -> array:
    """Inverse of `pack`; also takes a plain list (state files written before packing)."""
    if isinstance(v, list):
        return array("d", [float(x) for x in v])
    a = array("d", base64.b64decode(v.encode("ascii"), validate=True))
    if sys.byteorder == "big":
        a.byteswap()
    return a


class RollingMoments:
    """Mean and standard deviation of the last `window` values."""

    __slots__ = ("_buf", "_i", "_k", "_s", "_since", "_ss", "n", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        # array('d') holds 8 bytes a value; a list of floats ~32 (pointer + float object). Thousands of
        # series x windows of hundreds: this decides whether the daemon fits the gateway's memory.
        self._buf = array("d")
        self._i = 0  # next slot to overwrite once the buffer is full
        self.n = 0
        self._k = 0.0  # shift
        self._s = 0.0  # sum of (x - k)
        self._ss = 0.0  # sum of (x - k)^2
        self._since = 0

    def push(self, x: float) -> None:
        d = x - self._k
        if self.n < self.window:
            if self.n == 0:
                self._k = x
                d = 0.0
            self._buf.append(d)
            self.n += 1
            self._s += d
            self._ss += d * d
        else:
            i = self._i
            old = self._buf[i]
            self._buf[i] = d
            self._s += d - old
            self._ss += d * d - old * old
            self._i = i + 1 if i + 1 < self.window else 0
        self._since += 1
        if self._since >= self.window:
            self._recompute()

    def _recompute(self) -> None:
        self._since = 0
        if not self.n:
            return
        mean = self._k + math.fsum(self._buf) / self.n
        shift = mean - self._k
        self._buf = array("d", [d - shift for d in self._buf])
        self._k = mean
        self._s = math.fsum(self._buf)
        self._ss = math.fsum(d * d for d in self._buf)

    @property
    def mean(self) -> float:
        return self._k + self._s / self.n if self.n else 0.0

    @property
    def std(self) -> float:
        n = self.n
        if n < 2:
            return 0.0
        var = (self._ss - self._s * self._s / n) / (n - 1)
        return math.sqrt(var) if var > 0.0 else 0.0

    @property
    def scale(self) -> float:
        """The standard deviation, floored: a constant baseline has no spread, and any change is then as
        surprising as it gets, but still finite."""
        std = self.std
        floor = 1e-9 * (abs(self.mean) + 1.0)
        return std if std > floor else floor

    def values(self) -> list[float]:
        """Oldest first."""
        k = self._k
        buf = self._buf[self._i:] + self._buf[: self._i] if self.n == self.window else self._buf
        return [d + k for d in buf]

    def clear(self) -> None:
        self.__init__(self.window)  # type: ignore[misc]

    def get_state(self) -> dict[str, Any]:
        # Internals, so that a restored window continues bit-for-bit; a resize rebuilds from them.
        return {"window": self.window, "buf": pack(self._buf), "i": self._i, "k": self._k, "s": self._s,
                "ss": self._ss, "since": self._since}

    def set_state(self, state: dict[str, Any]) -> None:
        if "buf" not in state:  # only "values" (an old state file)
            values = [float(v) for v in state["values"]]
        elif int(state["window"]) != self.window:
            saved = RollingMoments(int(state["window"]))  # restored as it was, then read oldest first
            saved.set_state(state)
            values = saved.values()
        else:
            buf = unpack(state["buf"])
            if len(buf) > self.window:
                raise ValueError("rolling window state holds more values than its window")
            self._buf = buf
            self.n = len(buf)
            self._i = int(state["i"])
            self._k, self._s, self._ss = float(state["k"]), float(state["s"]), float(state["ss"])
            self._since = int(state["since"])
            return
        # A changed window size: the newest values that fit are kept.
        self.clear()
        for v in values[-self.window:]:
            self.push(v)


class EwMoments:
    """Mean and standard deviation of a stream over an effective `window`: exact (Welford) for the first
    `window` values, then exponentially weighted with the centre of mass of a `window`-long rolling window
    (alpha = 2 / (window + 1)).

    Three floats instead of a `window`-long buffer: for the likelihood's 2,000-score history that is 16 KB
    less per series (most of a series' memory), and on NAB and SKAB the scores are unchanged within 0.2
    points (docs/benchmarks.md).
    """

    __slots__ = ("_a", "m", "n", "v", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._a = 2.0 / (window + 1.0)
        self.n = 0
        self.m = 0.0
        self.v = 0.0  # population variance (exponentially weighted once past `window`)

    def push(self, x: float) -> None:
        n = self.n + 1
        self.n = n
        d = x - self.m
        if n <= self.window:
            self.m += d / n
            self.v += (d * (x - self.m) - self.v) / n
        else:
            a = self._a
            self.m += a * d
            self.v = (1.0 - a) * (self.v + a * d * d)

    @property
    def mean(self) -> float:
        return self.m

    @property
    def std(self) -> float:
        return math.sqrt(self.v) if self.v > 0.0 else 0.0

    def get_state(self) -> dict[str, Any]:
        return {"n": self.n, "m": self.m, "v": self.v}

    def set_state(self, state: dict[str, Any]) -> None:
        if "m" in state:
            self.n, self.m, self.v = int(state["n"]), float(state["m"]), float(state["v"])
            return
        # A RollingMoments state (files written before the likelihood kept moments only): replay its values.
        old = RollingMoments(int(state.get("window", self.window)))
        old.set_state(state)
        self.__init__(self.window)  # type: ignore[misc]
        for v in old.values():
            self.push(v)


class RollingMedian:
    """Median and MAD of the last `window` values on a sorted list (bisect: memmove in C, no numpy)."""

    __slots__ = ("_i", "_ring", "_sorted", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._ring = array("d")  # compact, as in RollingMoments
        self._sorted = array("d")
        self._i = 0

    @property
    def n(self) -> int:
        return len(self._ring)

    def push(self, x: float) -> None:
        srt = self._sorted
        if len(self._ring) < self.window:
            self._ring.append(x)
        else:
            old = self._ring[self._i]
            self._ring[self._i] = x
            self._i = self._i + 1 if self._i + 1 < self.window else 0
            del srt[bisect_left(srt, old)]
        insort(srt, x)

    def median(self) -> float:
        s = self._sorted
        n = len(s)
        h = n >> 1
        return s[h] if n & 1 else 0.5 * (s[h - 1] + s[h])

    def mad(self, med: float) -> float:
        """Median absolute deviation from `med` in O(log n): k-th smallest of two sorted deviation runs."""
        s = self._sorted
        n = len(s)
        p = bisect_left(s, med)
        na, nb = p, n - p  # left deviations med - s[p-1-j], right deviations s[p+j] - med, both ascending

        def kth(k: int) -> float:
            lo, hi = max(0, k + 1 - nb), min(k + 1, na)
            while lo < hi:
                i = (lo + hi) >> 1
                j = k + 1 - i
                if j > 0 and med - s[p - 1 - i] < s[p + j - 1] - med:
                    lo = i + 1
                else:
                    hi = i
            j = k + 1 - lo
            a = med - s[p - lo] if lo > 0 else -1.0
            b = s[p + j - 1] - med if j > 0 else -1.0
            return a if a > b else b

        h = n >> 1
        return kth(h) if n & 1 else 0.5 * (kth(h - 1) + kth(h))

    def values(self) -> list[float]:
        r = self._ring
        return (r[self._i:] + r[: self._i]).tolist() if len(r) == self.window else r.tolist()

    def clear(self) -> None:
        self._ring = array("d")
        self._sorted = array("d")
        self._i = 0

    def get_state(self) -> dict[str, Any]:
        r = self._ring
        return {"values": pack(r[self._i:] + r[: self._i] if len(r) == self.window else r)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.clear()
        for v in unpack(state["values"])[-self.window:]:
            self.push(v)
