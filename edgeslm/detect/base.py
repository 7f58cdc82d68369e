"""The detector contract (River-style): score a value against what was learnt, then learn from it.

A detector is pure: no I/O, no clock, no logging; the timestamp is passed in. `score_one` returns None while
warming up ("not enough data", never a guess) and otherwise a non-negative score in the detector's own units;
`threshold` is where that score means "anomalous". `update` = score then learn, with the detector's own rule
for keeping anomalies out of its baseline. State is a JSON-safe dict (no NaN/inf) and restores exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from collections.abc import Iterable
from typing import Any, ClassVar

SCORE_CAP = 1e9  # scores stay finite so that state and events serialise with allow_nan=False


class Detector(ABC):
    __slots__ = ()  # no instance __dict__: the subclasses' __slots__ then hold all their state
    name: ClassVar[str]
    threshold: float
    warmup: int

    @abstractmethod
    def score_one(self, x: float, ts: float = 0.0) -> float | None:
        """Score of x against the current baseline; None while warming up. Does not change state."""

    @abstractmethod
    def learn_one(self, x: float, ts: float = 0.0) -> None:
        """Add x to the baseline unconditionally."""

    def update(self, x: float, ts: float = 0.0) -> float | None:
        """Score, then learn (subclasses keep anomalies out of the baseline here)."""
        s = self.score_one(x, ts)
        self.learn_one(x, ts)
        return s

    @abstractmethod
    def get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None: ...

    def baseline(self) -> tuple[float, float] | None:
        """(mean, std) of the learnt baseline when the detector has one, for alarm evidence."""
        return None


class Rebaseliner:
    """Keeps anomalous values out of a baseline, but accepts a lasting level shift as the new normal.

    After `after` anomalous samples in a row the held-back values become the baseline (deliberate
    re-baselining) instead of alarming forever on a machine that was simply moved to a new set point.
    """

    __slots__ = ("after", "held")

    def __init__(self, after: int) -> None:
        self.after = after
        # The empty tuple (shared) while nothing is held, which is most of the time: no empty list per detector
        # per series. Held values in array('d'): 8 bytes each, not a float object and a pointer.
        self.held: array[float] | tuple[()] = ()

    def hold(self, x: float) -> array[float] | None:
        """Hold back an anomalous x; returns the values to re-baseline on when the shift has lasted."""
        held = self.held
        if isinstance(held, array):
            held.append(x)
        else:
            self.held = held = array("d", (x,))
        if len(held) >= self.after:
            self.held = ()
            return held
        return None

    def release(self) -> None:
        if self.held:
            self.held = ()

    def restore(self, values: Iterable[float]) -> None:
        """The held values of a saved state."""
        held = array("d", values)
        self.held = held if held else ()
