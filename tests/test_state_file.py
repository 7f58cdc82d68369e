"""Detector state on disk: written in pieces, compact, and still readable in the older list format."""

from __future__ import annotations

import json
import random
from array import array

from edgeslm.detect.engine import DetectionEngine
from edgeslm.detect.rolling import EwMoments, RollingMedian, RollingMoments, pack, unpack
from edgeslm.models import Sample
from edgeslm.settings import AlarmSettings, DetectSettings


def _engine(samples: int) -> DetectionEngine:
    e = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    r = random.Random(7)
    for i in range(samples):
        for a in ("p1", "p2"):
            for s in ("temp", "vib"):
                e.process(Sample(a, s, 1000.0 + i, r.gauss(10.0, 1.0) + (8.0 if i == samples - 50 else 0.0)))
    return e


def test_streamed_state_is_the_same_document_as_state() -> None:
    e = _engine(2500)
    assert json.loads("".join(e.state_json())) == json.loads(json.dumps(e.state(), allow_nan=False))


def test_streamed_state_restores_an_engine_that_continues_like_one_restored_from_state() -> None:
    src = _engine(2500)
    a = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    a.load_state(json.loads(json.dumps(src.state(), allow_nan=False)))
    b = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    b.load_state(json.loads("".join(src.state_json())))
    r = random.Random(3)
    for i in range(400):
        for s in ("temp", "vib"):
            x = Sample("p1", s, 5000.0 + i, r.gauss(10.0, 1.0) * (3.0 if i % 131 == 0 else 1.0))
            ea, eb = a.process(x), b.process(x)
            assert [(v.state, v.severity, v.signals) for v in ea] == [(v.state, v.severity, v.signals) for v in eb]
            assert a.likelihood("p1", s) == b.likelihood("p1", s)


def test_full_windows_are_packed_compactly() -> None:
    e = _engine(2500)  # the 2,000-score calibration windows are full
    per_series = [len(json.dumps(s, separators=(",", ":"))) for s in e.state()["series"]]
    # Windows of 240 + 240 + 120 + 10 doubles, packed at ~11 bytes each (JSON numbers: ~19); the likelihood
    # keeps moments, not its 2,000 scores.
    assert max(per_series) < 12_000, per_series


def test_pack_round_trips_exactly() -> None:
    a = array("d", [0.1, -2.5e300, 5e-324, 0.0, -0.0, 1 / 3])
    b = unpack(pack(a))
    assert b.tobytes() == a.tobytes()
    assert unpack([1.0, 2]) == array("d", [1.0, 2.0])  # the older list format


def test_rolling_state_in_the_older_list_format_still_loads() -> None:
    m = RollingMoments(5)
    m.set_state({"values": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "window": 6})
    assert m.n == 5 and m.values() == [2.0, 3.0, 4.0, 5.0, 6.0]
    med = RollingMedian(3)
    med.set_state({"values": [1.0, 9.0, 2.0, 3.0]})
    assert med.values() == [9.0, 2.0, 3.0] and med.median() == 3.0


def test_rolling_state_moves_to_a_smaller_window_keeping_the_newest() -> None:
    big = RollingMoments(8)
    for v in range(20):
        big.push(float(v))
    small = RollingMoments(3)
    small.set_state(json.loads(json.dumps(big.get_state())))
    assert small.values() == [17.0, 18.0, 19.0]
    same = RollingMoments(8)
    same.set_state(big.get_state())
    assert same.values() == big.values() and same.mean == big.mean and same.std == big.std


def test_ew_moments_are_exact_over_the_first_window_then_forget() -> None:
    r = random.Random(5)
    xs = [r.gauss(3.0, 2.0) for _ in range(200)]
    m = EwMoments(200)
    for x in xs:
        m.push(x)
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    assert abs(m.mean - mean) < 1e-12 and abs(m.std - var**0.5) < 1e-12
    for _ in range(3000):  # a new level: after ~10 windows the old one is forgotten
        m.push(r.gauss(50.0, 1.0))
    assert abs(m.mean - 50.0) < 0.5 and 0.7 < m.std < 1.4


def test_ew_moments_take_over_a_rolling_window_state() -> None:
    old = RollingMoments(100)
    for v in range(100):
        old.push(float(v))
    m = EwMoments(100)
    m.set_state(json.loads(json.dumps(old.get_state())))
    assert m.n == 100 and abs(m.mean - old.mean) < 1e-9
    assert abs(m.std - old.std * (99 / 100) ** 0.5) < 1e-9  # population vs sample spread
    again = EwMoments(100)
    again.set_state(m.get_state())
    assert (again.n, again.mean, again.std) == (m.n, m.mean, m.std)


def test_a_restored_engine_continues_exactly_even_mid_row_and_mid_episode() -> None:
    src = _engine(2500)  # two assets of two signals: multivariate rows, an episode raised near the end
    ts = 3600.0
    for sig in ("temp", "vib", "temp"):  # stop half-way through a row: one signal reported, one pending
        src.process(Sample("p1", sig, ts, 10.0))
        ts += 1.0
        pending = src.state()["multi"]["p1"]["pending"]
        if len(pending) == 1:
            break
    assert len(pending) == 1
    order = (pending[0], "vib" if pending[0] == "temp" else "temp")  # the pending one completes the row
    b = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    b.load_state(json.loads("".join(src.state_json())))
    r = random.Random(3)
    for i in range(400):
        for s in order:
            x = Sample("p1", s, ts + i, r.gauss(10.0, 1.0) * (3.0 if i % 131 == 0 else 1.0))
            ea, eb = src.process(x), b.process(x)
            assert [(v.state, v.severity, v.signals) for v in ea] == [(v.state, v.severity, v.signals) for v in eb]
            assert src.likelihood("p1", s) == b.likelihood("p1", s)
            assert src.multivariate_tail("p1") == b.multivariate_tail("p1")
