"""Novel levels and contexts: has this quantised level, or this short sequence of levels, been seen before?

After the Contextual Anomaly Detector (CAD OSE, Smirnov 2016; second best on NAB): quantise each sample into
a discrete state, learn which state follows which context, and score the fraction of the current step's
contexts whose continuation was never seen. Re-stated compactly, causally and with bounded memory:

- a symbol per sample: the value's level among `levels` bins of the range learnt during warm-up (no
  look-ahead; up to one range width outside it values get levels of their own, beyond that they saturate);
  a level is at least `noise` x the robust sample-to-sample noise wide;
- `orders` = 0: score 1 when the level was never visited, else 0 ("new territory");
- `orders` >= 1 (1 is the default): contexts of orders 1..`orders` (the last k symbols); score = fraction of
  the orders whose transition (context -> symbol) is new; with `support` > 0 only a symbol seen at least that
  often can be novel (a usual level in an unusual place). With the default threshold 0.75, orders 2 flags the
  same steps as orders 1 (a new first-order transition makes every longer one new too);
- memory is bounded: past `capacity` keys all counts are halved and the keys that reach 0 are dropped (rare
  transitions are forgotten first); a stay of `warmup` samples more than one range width outside the range
  widens the range and restarts the table (a deliberate re-baseline of what "a level" means).

What is kept of CAD OSE and what is not: CAD learns contexts over the bits of an 8-level code of the value
plus its own active contexts, scores 1 - (share of its selected contexts that came true) when the value was
not predicted, and rests `restPeriod` samples after a score >= 0.75; it uses each file's min/max (look-ahead)
and unbounded memory. Here only the first-order level transitions are kept (bounded, causal range), and the
calibration (likelihood.EventRate) and the engine do the rest: a novel step lowers the sample's probability
but does not open the alarm gate by itself (another detector must be beyond its own threshold), which keeps
Gaussian noise from alarming on the novel entry/exit transitions of its rare tail levels (measured,
docs/detectors.md).
"""

from __future__ import annotations

from array import array
from typing import Any

from edgeslm.detect.base import Detector

_BITS = 6  # bits per symbol: levels -levels..2*levels-1 (3*levels <= 42 for levels <= 14)

# One int object per distinct table key, shared by every series' table: a key is a level or a transition, from a
# small set (42 levels, 42 x 42 first-order transitions), and a table held ~30 key objects of its own (~1 KB a
# series). Bounded, for configurations with many more possible keys (orders > 1): past it keys stay private.
_KEYS: dict[int, int] = {}
_KEYS_MAX = 8192


def _shared(key: int) -> int:
    """The shared int object equal to key (only for keys entering a table: the value and the table are as without)."""
    k = _KEYS.get(key)
    if k is not None:
        return k
    if len(_KEYS) < _KEYS_MAX:
        _KEYS[key] = key
    return key


class ContextNovelty(Detector):
    """Never-seen levels (orders=0) or level sequences (orders>=1) of one signal; score in [0, 1]."""

    __slots__ = (
        "_filled", "_hi", "_hist", "_last", "_lo", "_mask", "_n", "_out", "_out_hi", "_out_lo", "_step", "_steps",
        "_table", "_vhi", "_vlo", "capacity", "fresh", "hole", "levels", "noise", "orders", "support", "threshold",
        "warmup",
    )

    name = "context"

    def __init__(self, levels: int = 8, orders: int = 1, warmup: int = 250, threshold: float = 0.75,
                 capacity: int = 8192, support: int = 0, noise: float = 2.0) -> None:
        if not 2 <= levels <= 14:
            raise ValueError("levels must be within 2..14")
        self.levels = levels
        self.orders = orders
        self.warmup = warmup
        self.threshold = threshold
        self.capacity = capacity
        self.support = support
        self.noise = noise
        self._mask = (1 << (_BITS * orders)) - 1
        self._n = 0
        self._lo = 0.0
        self._hi = 0.0
        self._step = 0.0  # width of one level; 0 until the warm-up range is known
        self._hist = 0  # the last `orders` symbols, newest in the low bits
        self._filled = 0  # how many symbols _hist holds (after a restart it refills)
        self._vlo = 64  # lowest and highest level visited since the table (re)started (64 / -1: none yet)
        self._vhi = -1
        # Set by update() when it returns a novel score (only then meaningful): the sample's level had never
        # been visited, and it lies between visited levels (a gap inside the range, not a new extreme).
        self.fresh = False
        self.hole = False
        self._table: dict[int, int] = {}
        self._last = 0.0  # warm-up only: previous value and the |steps| so far
        # array('d'), not a list: 250 float objects per series that die together at the end of the warm-up left
        # pymalloc's 32-byte pools a fifth full (other floats pin them), ~15 MB of RSS at 2,000 series for good.
        self._steps = array("d")
        self._out = 0  # consecutive samples far outside the range, and their extremes
        self._out_lo = self._out_hi = 0.0
        self._reset_out()

    def _reset_out(self) -> None:
        self._out = 0
        self._out_lo = float("inf")
        self._out_hi = float("-inf")

    # -- quantiser ------------------------------------------------------------------------------------------
    def _fit(self) -> None:
        span = self._hi - self._lo
        if span <= 0.0:
            span = abs(self._lo) * 0.01 or 1.0
        step = span / (self.levels - 1)
        # A level is at least `noise` x the sample-to-sample noise wide, otherwise plain noise keeps finding
        # new levels at its tails. Noise sigma from the median |step| of the warm-up (robust to the signal's
        # own jumps): median |N(0, 2 s^2)| = 0.6745 * sqrt(2) * s.
        d = sorted(self._steps)
        floor = self.noise * d[len(d) // 2] / (0.6745 * 2.0**0.5) if d else 0.0
        self._steps = array("d")
        self._step = step if step > floor else floor

    def _symbol(self, x: float) -> int:
        """Level of x, saturated one range width outside the learnt range, offset to be >= 0."""
        step = self._step
        b = int((x - self._lo) // step)
        lv = self.levels
        if b < -lv:
            b = -lv
        elif b >= 2 * lv:
            b = 2 * lv - 1
        return b + lv

    def _outside(self, x: float) -> bool:
        return x < self._lo - (self._hi - self._lo) or x > self._hi + (self._hi - self._lo)

    def _keys(self, sym: int) -> list[int]:
        """The key of sym alone, then per order k the key of the transition (last k symbols -> sym)."""
        h = self._hist
        keys = [sym << 4]
        for k in range(1, min(self.orders, self._filled) + 1):
            ctx = h & ((1 << (_BITS * k)) - 1)
            keys.append((((ctx << _BITS) | sym) << 4) | k)
        return keys

    def _novelty(self, keys: list[int]) -> float:
        t = self._table
        if not self.orders:
            return 0.0 if keys[0] in t else 1.0
        if self.support and t.get(keys[0], 0) < self.support:
            return 0.0
        new = 0
        for i in range(1, len(keys)):
            if keys[i] not in t:
                new += 1
        # Orders not filled yet (right after a restart) count as new: nothing is known about them.
        return (new + self.orders - (len(keys) - 1)) / self.orders

    # -- contract -------------------------------------------------------------------------------------------
    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        if self._n < self.warmup or self._step == 0.0:
            return None
        return self._novelty(self._keys(self._symbol(x)))

    def learn_one(self, x: float, ts: float = 0.0) -> None:
        self._learn(x, None)

    def update(self, x: float, ts: float = 0.0) -> float | None:
        step = self._step
        if self._n < self.warmup or step == 0.0:
            self._learn(x, None)
            return None
        lo = self._lo
        span = self._hi - lo
        orders = self.orders
        if orders <= 1 and lo - span <= x <= self._hi + span and (not orders or self._filled):
            # Hot paths of orders 0 and 1 inside the range: the same as _novelty + _learn, inlined.
            self._n += 1
            if self._out:
                self._reset_out()
            sym = int((x - lo) // step) + self.levels
            key = sym << 4
            t = self._table
            c = t.get(key)
            if c is None:
                self.fresh = True
                self.hole = self._vlo < sym < self._vhi
                self._vlo = min(self._vlo, sym)
                self._vhi = max(self._vhi, sym)
            if not orders:
                if c is None:
                    t[_shared(key)] = 1
                    return 1.0
                t[key] = c + 1
                return 0.0  # (fresh/hole are left as they were: not meaningful on a score of 0)
            tkey = (((self._hist << _BITS) | sym) << 4) | 1
            ct = t.get(tkey)
            if c is None:
                c = 0
            elif ct is None:
                self.fresh = self.hole = False
            sup = self.support
            s = 0.0 if ct is not None or (sup and c < sup) else 1.0
            t[_shared(key) if c == 0 else key] = c + 1
            if ct is None:
                t[_shared(tkey)] = 1
            else:
                t[tkey] = ct + 1
            self._hist = sym
            if len(t) > self.capacity:
                self._table = {k: v >> 1 for k, v in t.items() if v > 1}
            return s
        sym = self._symbol(x)
        keys = self._keys(sym)
        s = self._novelty(keys)
        self.fresh = keys[0] not in self._table
        self.hole = self.fresh and self._vlo < sym < self._vhi
        self._learn(x, (sym, keys))
        return s

    def _learn(self, x: float, pre: tuple[int, list[int]] | None) -> None:
        n = self._n
        self._n = n + 1
        if self._step == 0.0:
            if n:
                self._steps.append(abs(x - self._last))
            self._last = x
            if n == 0:
                self._lo = self._hi = x
            elif x < self._lo:
                self._lo = x
            elif x > self._hi:
                self._hi = x
            if self._n >= self.warmup:
                self._fit()
            return
        if self._outside(x):
            # A spike saturates; a stay far outside the range (warmup samples in a row) is a new regime:
            # widen the range to it and learn sequences afresh.
            self._out += 1
            self._out_lo = min(self._out_lo, x)
            self._out_hi = max(self._out_hi, x)
            if self._out >= self.warmup:
                self._lo = min(self._lo, self._out_lo)
                self._hi = max(self._hi, self._out_hi)
                self._fit()
                self._table = {}
                self._hist = 0
                self._filled = 0
                self._vlo, self._vhi = 64, -1
                self._reset_out()
                return
        elif self._out:
            self._reset_out()
        if pre is None:
            sym = self._symbol(x)
            keys = self._keys(sym)
        else:
            sym, keys = pre
        self._vlo = min(self._vlo, sym)
        self._vhi = max(self._vhi, sym)
        t = self._table
        for key in keys:
            c = t.get(key)
            if c is None:
                t[_shared(key)] = 1
            else:
                t[key] = c + 1
        if len(t) > self.capacity:
            self._table = {k: c >> 1 for k, c in t.items() if c > 1}
        self._hist = ((self._hist << _BITS) | sym) & self._mask
        if self._filled < self.orders:
            self._filled += 1

    def get_state(self) -> dict[str, Any]:
        return {"n": self._n, "lo": self._lo, "hi": self._hi, "step": self._step,
                "hist": self._hist, "filled": self._filled, "vlo": self._vlo, "vhi": self._vhi,
                "last": self._last, "steps": self._steps.tolist(),
                "out": self._out, "out_lo": self._out_lo if self._out else None,
                "out_hi": self._out_hi if self._out else None, "table": [[k, c] for k, c in self._table.items()]}

    def set_state(self, state: dict[str, Any]) -> None:
        self._n = int(state["n"])
        self._lo = float(state["lo"])
        self._hi = float(state["hi"])
        self._step = float(state["step"])
        self._hist = int(state["hist"])
        self._filled = int(state["filled"])
        self._vlo = int(state.get("vlo", 64))
        self._vhi = int(state.get("vhi", -1))
        self._last = float(state["last"])
        self._steps = array("d", [float(v) for v in state["steps"]])
        self._table = {_shared(int(k)): int(c) for k, c in state["table"]}
        self._reset_out()
        if state["out"]:
            self._out = int(state["out"])
            self._out_lo = float(state["out_lo"])
            self._out_hi = float(state["out_hi"])
