"""SKAB's NAB-style changepoint score (tsad's metric="nab", 60 s windows to the right) on hand-made cases."""

from __future__ import annotations

import pytest

from edgeslm.detect.skabscore import (
    FileResult,
    changepoints,
    score_corpus,
    score_file,
    tanh_weight,
    windows,
)

TIMES = [float(t) for t in range(400)]  # 1 Hz, seconds


def _labels(*cps: int) -> list[int]:
    return [1 if t in cps else 0 for t in range(len(TIMES))]


def _preds(*at: int) -> list[int]:
    return _labels(*at)


def _norm(res: list[FileResult]) -> dict[str, float]:
    return {k: v.normalized for k, v in score_corpus(res).items()}


def test_changepoints_are_segment_starts_and_ends_and_an_open_first_row() -> None:
    assert changepoints([0, 0, 1, 1, 0, 0]) == [0, 0, 1, 0, 1, 0]
    assert changepoints([1, 1, 0]) == [1, 0, 1]  # held at the first scored row: a changepoint there
    assert changepoints([0, 1]) == [0, 1]
    assert changepoints([]) == []


def test_windows_right_of_each_changepoint_and_overlaps_cut_from_the_right() -> None:
    assert windows(TIMES, _labels(100)) == [[100.0, 160.0]]
    # second window would start inside the first: it starts where the first ends (both share t = 160)
    assert windows(TIMES, _labels(100, 130, 300)) == [[100.0, 160.0], [160.0, 190.0], [300.0, 360.0]]


def test_tanh_scale_landmarks() -> None:
    assert tanh_weight(0.0, 1.0, -0.11) == 1.0  # left edge: A_tp
    assert tanh_weight(1.0, 1.0, -0.11) == pytest.approx(-0.11, abs=1e-15)  # right edge: A_fp
    assert tanh_weight(0.5, 1.0, -0.11) == pytest.approx(0.44405, abs=1e-4)  # just past the midpoint
    assert tanh_weight(0.999, 1.0, -0.11) == tanh_weight(1.0, 1.0, -0.11)  # index capped at the last point
    assert tanh_weight(0.25, 1.0, -0.11) > tanh_weight(0.5, 1.0, -0.11) > tanh_weight(0.75, 1.0, -0.11)


def test_detection_at_the_window_start_is_perfect() -> None:
    res = score_file(TIMES, _labels(100), _preds(100))
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([0.0], 0, 0)
    assert _norm([res]) == pytest.approx({"standard": 100.0, "low_fp": 100.0, "low_fn": 100.0})


def test_detection_at_the_window_end_is_worth_a_fp_weight() -> None:
    res = score_file(TIMES, _labels(100), _preds(160))  # right edge included
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([1.0], 0, 0)
    assert res.raw("standard") == pytest.approx(-0.11)
    assert res.raw("low_fp") == pytest.approx(-0.22)
    # normalised: 100 (raw - null) / (perfect - null), null = -1 (-2 for low FN), perfect = 1
    assert _norm([res]) == pytest.approx({"standard": 44.5, "low_fp": 39.0, "low_fn": 100 * 1.89 / 3})


def test_later_detections_inside_a_window_are_free() -> None:
    res = score_file(TIMES, _labels(100), _preds(100, 120, 159))
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([0.0], 0, 0)


def test_false_positive_and_miss() -> None:
    res = score_file(TIMES, _labels(100), _preds(50, 161))  # before the window; one second past its end
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([], 2, 1)
    assert res.raw("standard") == pytest.approx(-1.0 - 2 * 0.11)
    assert _norm([res]) == pytest.approx({"standard": -11.0, "low_fp": -22.0, "low_fn": 100 * -0.22 / 3})


def test_fp_costs_are_flat_whatever_the_distance() -> None:
    near = score_file(TIMES, _labels(100), _preds(100, 161))
    far = score_file(TIMES, _labels(100), _preds(100, 399))
    assert near.raw("standard") == far.raw("standard") == pytest.approx(1.0 - 0.11)


def test_shared_boundary_counts_in_both_cut_windows() -> None:
    # windows [100, 160] and [160, 190]: a detection at 160 is the first in both (as tsad counts it)
    res = score_file(TIMES, _labels(100, 130), _preds(160))
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([1.0, 0.0], 0, 0)
    # ... and a detection exactly on the second changepoint falls in the first window only: the cut one is missed
    res = score_file(TIMES, _labels(100, 130), _preds(100, 130))
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([0.0], 0, 1)
    # between two windows: strictly after the first one's end and before the next one's start
    res = score_file(TIMES, _labels(100, 300), _preds(100, 200, 300))
    assert (res.tp_pos, res.n_fp, res.n_fn) == ([0.0, 0.0], 1, 0)


def test_null_detector_scores_zero_and_perfect_one_hundred() -> None:
    labels = [_labels(100, 250), _labels(30, 150, 390)]
    null = [score_file(TIMES, lab, [0] * len(TIMES)) for lab in labels]
    assert sum(f.n_fn for f in null) == 5
    assert _norm(null) == pytest.approx({"standard": 0.0, "low_fp": 0.0, "low_fn": 0.0})
    perfect = [score_file(TIMES, lab, lab) for lab in labels]  # a detection on every labelled changepoint
    assert _norm(perfect) == pytest.approx({"standard": 100.0, "low_fp": 100.0, "low_fn": 100.0})


def test_file_without_labels_only_adds_false_positives() -> None:
    quiet = score_file(TIMES, [0] * len(TIMES), _preds(10, 20))
    assert (quiet.n_windows, quiet.n_fp) == (0, 2)
    hit = score_file(TIMES, _labels(100), _preds(100))
    assert _norm([hit, quiet])["standard"] == pytest.approx(100 * (1.0 - 0.22 + 1.0) / 2)


def test_row_predictions_to_score_end_to_end() -> None:
    # a predicted segment from 110 to 200 (labelled fault from 100 to 190): both ends are changepoints
    rows = [1 if 110 <= t < 200 else 0 for t in range(len(TIMES))]
    res = score_file(TIMES, _labels(100, 190), changepoints(rows))
    assert (res.n_fp, res.n_fn) == (0, 0)
    assert res.tp_pos == pytest.approx([10 / 60, 10 / 60])
