"""SKAB's NAB-style changepoint score, reimplemented for the benchmark.

SKAB's changepoint leaderboard (waico/SKAB README at b2c0d46, "Changepoint detection problem") is computed
with the `tsad` package's evaluating(metric="nab", window_width="60s", anomaly_window_destination="righter")
on the test part of each file. That metric shares NAB's three cost profiles but not its scoring curve or its
threshold sweep. Rules replicated from that published method (the code is not ours to copy; this is written
from its description):

- Each labelled changepoint at time t opens a detection window [t, t + width] (window to the *right*, width
  60 s). When a window reaches the next one's start, the next window is cut to start where this one ends
  ("cut right window"); the two then share that instant.
- Predicted changepoints are rows whose prediction is 1. Per window only the earliest prediction inside it
  (both ends included) counts: a true positive worth the tanh scale below at its relative position in the
  window (A_tp at the left edge, A_fp at the right edge). Later predictions inside a window cost nothing.
- A window with no prediction inside costs A_fn. Every prediction outside all windows (before the first,
  strictly between two, after the last) costs A_fp, flat: there is no distance weighting, no probationary
  period and no threshold sweep (the predictions are already binary).
- Per profile, raw scores, null scores (every window missed: n_windows x A_fn) and perfect scores
  (n_windows x A_tp) are summed over files and normalised: 100 x (raw - null) / (perfect - null), so the
  null detector gets 0 and a perfect one 100. (tsad rounds the result to 2 decimals; we do not.)

The tanh scale ("improved" scale function, koef 1): x runs over `steps` = 1000 equally spaced points from
-pi/2 to pi/2; y(x) = (A_tp - A_fp)/2 x (-tanh(x) / tanh(pi/2)) + (A_tp - A_fp)/2 + A_fp; a detection at
relative position p = (t_detect - t_start) / (t_end - t_start) takes y at index min(int(p x steps), steps - 1).

Predicted changepoints from row predictions follow SKAB's baseline notebooks (T-squared): |diff| of the 0/1
row prediction over the test part, with the first test row taking the prediction itself, so both the start
and the end of every predicted segment are changepoints, and a segment already open at the first test row
counts as one there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from edgeslm.detect.nabscore import CorpusScore

# (A_tp, A_fp, A_fn) per profile, tsad's default table_of_coef (A_tn is unused by the score).
PROFILES: dict[str, tuple[float, float, float]] = {
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
WINDOW_S = 60.0
STEPS = 1000


def changepoints(pred: Sequence[int]) -> list[int]:
    """Row predictions (0/1) -> predicted changepoints: |diff|, the first row keeps its own prediction."""
    if not pred:
        return []
    return [int(pred[0])] + [abs(int(b) - int(a)) for a, b in pairwise(pred)]


def windows(times: Sequence[float], truth_cp: Sequence[int], width: float = WINDOW_S) -> list[list[float]]:
    """Detection windows [t, t + width] right of each labelled changepoint, overlaps cut from the right."""
    wins = [[t, t + width] for t, c in zip(times, truth_cp, strict=True) if c == 1]
    for a, b in pairwise(wins):
        b[0] = max(b[0], a[1])  # overlap (a ends at or after b starts): b starts where a ends
    return wins


def tanh_weight(pos: float, a_tp: float, a_fp: float, steps: int = STEPS, koef: float = 1.0) -> float:
    """The tanh scale at relative window position pos (0 = window start, 1 = window end)."""
    k = min(int(pos * steps), steps - 1)
    # x as numpy.linspace(-pi/2, pi/2, steps) computes it (start + k * step, the last point exactly pi/2)
    x = math.pi / 2 if k == steps - 1 else -math.pi / 2 + k * (math.pi / (steps - 1))
    half = (a_tp - a_fp) / 2
    return half * -1 * math.tanh(koef * x) / math.tanh(math.pi * koef / 2) + half + a_fp


@dataclass(slots=True)
class FileResult:
    """One file's changepoint confusion: relative positions of the true positives, FP and FN counts."""

    n_windows: int
    tp_pos: list[float] = field(default_factory=list)
    n_fp: int = 0
    n_fn: int = 0

    def raw(self, profile: str) -> float:
        a_tp, a_fp, a_fn = PROFILES[profile]
        score = 0.0 + a_fp * self.n_fp
        score += a_fn * self.n_fn
        for p in self.tp_pos:
            score += tanh_weight(p, a_tp, a_fp)
        return score


def score_file(times: Sequence[float], truth_cp: Sequence[int], pred_cp: Sequence[int],
               width: float = WINDOW_S) -> FileResult:
    """Confusion of one file's predicted changepoints against its labelled ones (times in seconds, sorted)."""
    wins = windows(times, truth_cp, width)
    pred_t = [t for t, p in zip(times, pred_cp, strict=True) if p == 1]
    res = FileResult(len(wins))
    if not wins:
        res.n_fp = len(pred_t)
        return res
    res.n_fp += sum(1 for t in pred_t if t < wins[0][0])
    for i, (lo, hi) in enumerate(wins):
        inside = [t for t in pred_t if lo <= t <= hi]
        if inside:
            res.tp_pos.append((inside[0] - lo) / (hi - lo) if hi > lo else 0.0)
        else:
            res.n_fn += 1
        nxt = wins[i + 1][0] if i + 1 < len(wins) else math.inf
        res.n_fp += sum(1 for t in pred_t if hi < t < nxt)
    return res


def score_corpus(files: Sequence[FileResult]) -> dict[str, CorpusScore]:
    """Per profile: raw, null and perfect scores summed over the files, in file order."""
    out: dict[str, CorpusScore] = {}
    for prof, (a_tp, _a_fp, a_fn) in PROFILES.items():
        raw = null = perfect = 0.0
        for f in files:
            raw += f.raw(prof)
            null += f.n_windows * a_fn
            perfect += f.n_windows * a_tp
        out[prof] = CorpusScore(prof, raw, null, perfect)
    return out
