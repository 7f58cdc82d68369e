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

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


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
    prob_len = min(math.floor(probation_percent * n), probation_percent * 5000)
    index = {}
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
class ProfileScore:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def normalized(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def load_results(results_dir: Path, detector: str, data_dir: Path) -> dict[str, tuple[list[datetime], list[float]]]:
    """{'<category>/<file>.csv': (timestamps, anomaly scores)} read back from NAB-format result files."""
    out: dict[str, tuple[list[datetime], list[float]]] = {}
    for data_file in sorted(data_dir.glob("*/*.csv")):
        rel = f"{data_file.parent.name}/{data_file.name}"
        res = results_dir / detector / data_file.parent.name / f"{detector}_{data_file.name}"
        with res.open(newline="") as f:
            rows = list(csv.DictReader(f))
        out[rel] = ([parse_ts(r["timestamp"]) for r in rows], [float(r["anomaly_score"]) for r in rows])
    return out


def score_corpus(results: dict[str, tuple[list[datetime], list[float]]], windows_json: Path,
                 profiles_json: Path) -> dict[str, ProfileScore]:
    """Normalised NAB scores per profile, as NAB's optimize + score + normalize steps produce them."""
    windows_raw = json.loads(windows_json.read_text())
    profiles = json.loads(profiles_json.read_text())
    n_windows = sum(len(v) for v in windows_raw.values())
    out: dict[str, ProfileScore] = {}
    for prof, spec in profiles.items():
        cost = spec["CostMatrix"]
        pts: list[Point] = []
        null_pts: list[Point] = []
        for rel, (ts, scores) in results.items():
            wins = [(parse_ts(a), parse_ts(b)) for a, b in windows_raw.get(rel, [])]
            pts.extend(sweep_points(ts, scores, wins, rel, cost))
            null_pts.extend(sweep_points(ts, [0.0] * len(ts), wins, rel, cost))
        thr, raw = best_threshold(pts, cost)
        _, null = best_threshold(null_pts, cost)
        out[prof] = ProfileScore(prof, thr, raw, null, n_windows * cost["tpWeight"])
    return out
