"""NAB scoring (Lavin & Ahmad 2015; NAB v1.1 sweeper), reimplemented for the benchmark.

Rules replicated from NAB's published method: the first 15 % of each file (at most 750 rows) is
probationary and not scored; a detection is anomaly_score >= threshold; inside a labelled window only the
earliest detection counts, weighted by the scaled sigmoid of its position (1 at the window's left edge);
a detection outside every window costs fpWeight x the scaled sigmoid of its distance past the previous
window (-1 before any window); a window without detection costs fnWeight. One threshold per profile is
chosen by sweeping every distinct score over the whole corpus; scores are normalised so that the null
detector gets 0 and a perfect one 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


def scaled_sigmoid(pos: float) -> float:
    # NAB's sweeper.scaledSigmoid: -1 only strictly past 3 (at exactly 3.0 it is 2*sigmoid(-15) - 1)
    if pos > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * pos)) - 1.0


def parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s.strip())


@dataclass(frozen=True, slots=True)
class Point:
    score: float
    sweep: float
    window: str | None  # window name, None outside windows


def sweep_points(timestamps: list[datetime], scores: list[float], windows: list[tuple[datetime, datetime]],
                 name: str, cost: dict[str, float], probation_percent: float = 0.15) -> list[Point]:
    """Per-row weighted scores as NAB's Sweeper.calcSweepScore computes them (probationary rows dropped)."""
    n = len(timestamps)
    prob_len = probation_rows(n, probation_percent)
    index: dict[datetime, int] = {}
    for i, t in enumerate(timestamps):
        index.setdefault(t, i)
    max_tp = scaled_sigmoid(-1.0)
    wins = list(windows)
    out: list[Point] = []
    cur: tuple[datetime, datetime] | None = None
    cur_name: str | None = None
    cur_right = cur_width = 0.0
    prev_right: int | None = None
    prev_width = 0.0
    for i, (t, a) in enumerate(zip(timestamps, scores, strict=True)):
        if wins and t == wins[0][0]:
            cur = wins.pop(0)
            cur_name = f"{name}|{cur[0]}"
            cur_right = index[cur[1]]
            cur_width = float(cur_right - index[cur[0]] + 1)
        if cur is not None:
            w = scaled_sigmoid(-(cur_right - i + 1) / cur_width) * cost["tpWeight"] / max_tp
        else:
            # before any window: -1 exactly (NAB does not go through the sigmoid there)
            u = -1.0 if prev_right is None else scaled_sigmoid(abs(prev_right - i) / (prev_width - 1.0))
            w = u * cost["fpWeight"]
        if i >= prob_len:
            out.append(Point(a, w, cur_name))
        if cur is not None and t == cur[1]:
            prev_right, prev_width = i, cur_width
            cur = None
            cur_name = None
    return out


def best_threshold(points: list[Point], cost: dict[str, float]) -> tuple[float, float]:
    """(threshold, raw score) maximising the corpus score, sweeping thresholds from high to low."""
    pts = sorted(points, key=lambda p: p.score, reverse=True)
    windows: dict[str, float] = {p.window: -cost["fnWeight"] for p in pts if p.window is not None}
    total = sum(windows.values())  # threshold above every score: every window missed
    fp = 0.0
    best = (1.1, total)
    cur = 1.1
    for p in pts:
        if p.score != cur:
            if total + fp > best[1]:
                best = (cur, total + fp)
            cur = p.score
        if p.window is None:
            fp += p.sweep
        elif p.sweep > windows[p.window]:
            total += p.sweep - windows[p.window]
            windows[p.window] = p.sweep
    if total + fp > best[1]:
        best = (cur, total + fp)
    return best


def score_at(points: list[Point], cost: dict[str, float], threshold: float) -> float:
    windows: dict[str, float] = {p.window: -cost["fnWeight"] for p in points if p.window is not None}
    fp = 0.0
    for p in points:
        if p.score >= threshold:
            if p.window is None:
                fp += p.sweep
            else:
                windows[p.window] = max(windows[p.window], p.sweep)
    return fp + sum(windows.values())


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """A corpus's raw score with the null and perfect detectors' on the same corpus (NAB and SKAB's NAB-style
    score normalise the same way)."""

    profile: str
    raw: float
    null: float
    perfect: float

    @property
    def normalized(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


@dataclass(frozen=True, slots=True)
class ProfileScore(CorpusScore):
    threshold: float  # the swept threshold that gave `raw`


# NAB v1.1's config/profiles.json: the corpus's own file is used when there is one.
PROFILES: dict[str, dict[str, dict[str, float]]] = {
    "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
    "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
    "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}},
}


def probation_rows(n: int, probation_percent: float = 0.15) -> int:
    return int(min(math.floor(probation_percent * n), probation_percent * 5000))


def windows_from_labels(timestamps: list[datetime], labels: list[datetime], window_size: float = 0.10,
                        probation_percent: float = 0.15) -> list[tuple[datetime, datetime]]:
    """Anomaly windows for labelled anomaly timestamps by NAB's labeller rules (for a corpus that has
    combined_labels.json but no combined_windows.json): each window is window_size x rows / anomalies wide,
    centred on its label and clipped to the file; a first window starting inside the probationary part is
    dropped; a window starting at or before the end of the one before it is merged into it (one pass, as
    NAB's checkWindows does)."""
    n = len(timestamps)
    index = {t: i for i, t in reversed(list(enumerate(timestamps)))}
    idx = [index[t] for t in labels]
    width = int(window_size * n / len(idx)) if idx else 0
    wins = [(timestamps[max(a - width // 2, 0)], timestamps[min(a + width // 2, n - 1)]) for a in idx]
    if wins and wins[0][0] < timestamps[probation_rows(n, probation_percent)]:
        del wins[0]
    i = 0
    while len(wins) - 1 > i:
        if wins[i + 1][0] <= wins[i][1]:
            wins[i] = (wins[i][0], wins[i + 1][1])
            del wins[i + 1]
        i += 1
    return wins


def score_corpus(results: dict[str, tuple[list[datetime], list[float]]],
                 windows: dict[str, list[tuple[datetime, datetime]]],
                 profiles: dict[str, dict[str, dict[str, float]]] | None = None) -> dict[str, ProfileScore]:
    """Normalised NAB scores per profile, as NAB's optimize + score + normalize steps produce them.

    `windows` holds every file of the corpus (a file without windows: an empty list); `results` the scores."""
    n_windows = sum(len(v) for v in windows.values())
    out: dict[str, ProfileScore] = {}
    for prof, spec in (profiles or PROFILES).items():
        cost = spec["CostMatrix"]
        pts: list[Point] = []
        null_pts: list[Point] = []
        for rel, (ts, scores) in results.items():
            wins = windows.get(rel, [])
            pts.extend(sweep_points(ts, scores, wins, rel, cost))
            null_pts.extend(sweep_points(ts, [0.0] * len(ts), wins, rel, cost))
        thr, raw = best_threshold(pts, cost)
        _, null = best_threshold(null_pts, cost)
        out[prof] = ProfileScore(profile=prof, raw=raw, null=null, perfect=n_windows * cost["tpWeight"],
                                 threshold=thr)
    return out
