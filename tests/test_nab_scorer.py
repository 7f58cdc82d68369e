"""The NAB scorer reimplementation against hand-computed cases of NAB's published rules."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from edgeslm.detect.nabscore import (
    PROFILES,
    best_threshold,
    scaled_sigmoid,
    score_at,
    score_corpus,
    sweep_points,
    windows_from_labels,
)

COST = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}
T0 = datetime(2020, 1, 1)


def _ts(n: int) -> list[datetime]:
    return [T0 + timedelta(minutes=5 * i) for i in range(n)]


def test_scaled_sigmoid_landmarks() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    # NAB (sweeper.scaledSigmoid) clamps to -1 only strictly past 3: at 3.0 it is still 2*sigmoid(-15) - 1
    assert scaled_sigmoid(3.0) == pytest.approx(-0.99999938819, abs=1e-11) and scaled_sigmoid(3.0) > -1.0
    assert scaled_sigmoid(3.0000001) == -1.0


def test_earliest_detection_in_window_scores_one_and_later_ones_are_free() -> None:
    ts = _ts(1000)
    win = [(ts[500], ts[599])]
    scores = [0.0] * 1000
    scores[500] = scores[550] = 1.0
    pts = sweep_points(ts, scores, win, "f", COST)
    assert len(pts) == 1000 - 150  # probationary 15 %
    assert score_at(pts, COST, 0.5) == pytest.approx(1.0)  # left edge = tpWeight exactly


def test_missed_window_and_false_positives() -> None:
    ts = _ts(1000)
    win = [(ts[500], ts[599])]
    scores = [0.0] * 1000
    scores[300] = 1.0  # before any window: full FP cost
    pts = sweep_points(ts, scores, win, "f", COST)
    assert score_at(pts, COST, 0.5) == pytest.approx(-1.0 - 0.11)
    thr, raw = best_threshold(pts, COST)
    assert raw == pytest.approx(-1.0) and thr > 1.0  # best is to detect nothing


def test_fp_just_after_window_costs_less() -> None:
    ts = _ts(1000)
    win = [(ts[500], ts[599])]
    scores = [0.0] * 1000
    scores[601] = 1.0
    pts = sweep_points(ts, scores, win, "f", COST)
    fp = score_at(pts, COST, 0.5) + 1.0
    assert -0.11 < fp < 0  # scaled by the sigmoid of the distance past the window


def test_fp_exactly_three_widths_past_window_goes_through_the_sigmoid() -> None:
    ts = _ts(1000)
    win = [(ts[500], ts[599])]  # width 100: position = distance / 99
    scores = [0.0] * 1000
    scores[599 + 3 * 99] = 1.0
    pts = sweep_points(ts, scores, win, "f", COST)
    fp = score_at(pts, COST, 0.5) + 1.0
    assert fp == pytest.approx(0.11 * (2.0 / (1.0 + math.exp(15.0)) - 1.0), abs=1e-15) and fp > -0.11
    scores[599 + 3 * 99] = 0.0
    scores[599 + 3 * 99 + 1] = 1.0  # one row further: full FP cost
    assert score_at(sweep_points(ts, scores, win, "f", COST), COST, 0.5) == pytest.approx(-1.0 - 0.11, abs=1e-15)


def test_sweep_matches_fixed_threshold_scoring() -> None:
    ts = _ts(2000)
    win = [(ts[500], ts[599]), (ts[1500], ts[1599])]
    scores = [((i * 7919) % 1000) / 1000.0 for i in range(2000)]
    pts = sweep_points(ts, scores, win, "f", COST)
    thr, raw = best_threshold(pts, COST)
    assert score_at(pts, COST, thr) == pytest.approx(raw)
    for t in (0.1, 0.5, 0.9, 0.999):
        assert score_at(pts, COST, t) <= raw + 1e-9


def test_windows_from_labels_follow_nabs_labeller_rules() -> None:
    ts = _ts(1000)
    # one label: 10 % of the file wide (100 rows), centred on it
    assert windows_from_labels(ts, [ts[500]]) == [(ts[450], ts[550])]
    # two labels share the 10 %: 50 rows each; a window near the end is clipped to the file
    assert windows_from_labels(ts, [ts[400], ts[990]]) == [(ts[375], ts[425]), (ts[965], ts[999])]
    # a first window starting inside the probationary part (15 % = 150 rows) is dropped
    assert windows_from_labels(ts, [ts[160], ts[700]]) == [(ts[700 - 25], ts[700 + 25])]
    # overlapping windows merge into one
    assert windows_from_labels(ts, [ts[500], ts[520]]) == [(ts[475], ts[545])]
    assert windows_from_labels(ts, []) == []


def test_score_corpus_normalises_null_to_zero_and_perfect_to_one_hundred() -> None:
    ts = _ts(1000)
    wins = {"a/x.csv": [(ts[450], ts[550])], "a/quiet.csv": []}
    perfect = {"a/x.csv": (ts, [1.0 if i == 450 else 0.0 for i in range(1000)]), "a/quiet.csv": (ts, [0.0] * 1000)}
    null = {k: (t, [0.0] * len(t)) for k, (t, _) in perfect.items()}
    assert set(score_corpus(perfect, wins)) == set(PROFILES)  # NAB v1.1's profiles when none is given
    for prof in score_corpus(perfect, wins).values():
        assert prof.normalized == pytest.approx(100.0, abs=0.01)
    for prof in score_corpus(null, wins).values():
        assert prof.normalized == pytest.approx(0.0)
