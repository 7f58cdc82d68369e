"""Novelty detector (orders=1 default) in the engine: hot path, alarm gate, NAB export discount, restore."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from edgeslm.detect.context import ContextNovelty
from edgeslm.detect.engine import DetectionEngine
from edgeslm.models import AlarmState, Sample
from edgeslm.settings import AlarmSettings, DetectSettings

ONLY_CONTEXT = {"zscore": {"enabled": False}, "spike": {"enabled": False}, "ewma": {"enabled": False}}


def _staircase(n: int, hold: int = 20) -> list[float]:
    """50 -> 55 -> 60 -> 55 -> 50 ... each level held `hold` samples, with a small deterministic jitter."""
    steps = (50.0, 55.0, 60.0, 55.0)
    return [steps[(i // hold) % 4] + 0.05 * ((i * 7919) % 11 - 5) for i in range(n)]


@pytest.mark.parametrize(("support", "capacity"), [(0, 8192), (2, 8192), (0, 64)])
def test_orders1_hot_path_equals_score_then_learn(support: int, capacity: int) -> None:
    rng = random.Random(3)
    xs = [math.sin(i / 15.0) * 10 + rng.gauss(0, 0.5) for i in range(1500)]
    xs += [30.0, *xs[:100], -40.0, *(100.0 + rng.gauss(0, 1) for _ in range(200)), *xs[:300]]  # spikes, regime
    a = ContextNovelty(orders=1, support=support, capacity=capacity)
    b = ContextNovelty(orders=1, support=support, capacity=capacity)
    for i, x in enumerate(xs):
        s = b.score_one(x, float(i))
        b.learn_one(x, float(i))
        assert a.update(x, float(i)) == s
    assert a.get_state() == b.get_state()
    c = ContextNovelty(orders=1, support=support, capacity=capacity)
    c.set_state(json.loads(json.dumps(a.get_state(), allow_nan=False)))
    assert [c.update(x) for x in xs[:400]] == [a.update(x) for x in xs[:400]]


def test_hole_and_fresh_flags() -> None:
    # the flags describe the step that update() just scored as novel
    det = ContextNovelty(orders=1, warmup=150)
    for x in _staircase(1000):
        det.update(x)
    # a value between the visited levels 50 and 55 (in its own never-visited level): fresh and inside
    assert det.update(52.5) == 1.0 and det.fresh and det.hole
    # staying there: a new transition (52.5 -> 52.5) of a level now known
    assert det.update(52.5) == 1.0 and not det.fresh and not det.hole
    # a new extreme (outside the visited levels, inside the range's margin) is fresh but not a hole
    assert det.update(64.0) == 1.0 and det.fresh and not det.hole


def test_a_novel_transition_between_known_levels_alone_raises_nothing() -> None:
    xs = _staircase(3000)
    for i in range(2500, 2540):  # 50 -> 60 -> 50 directly: two never-seen transitions between known levels
        xs[i] = 60.0 if i < 2520 else 50.0
    eng = DetectionEngine(DetectSettings(**ONLY_CONTEXT), AlarmSettings(), {})
    events, surprises = [], []
    for i, x in enumerate(xs):
        events += eng.process(Sample("pump", "temp", float(i), x))
        if 2495 <= i < 2545:
            surprises.append(eng.surprise("pump", "temp"))
    assert max(surprises) > 3.0  # the novelty channel sees it: rare for this signal ...
    assert [e for e in events if e.state is AlarmState.RAISED] == []  # ... but no detector is beyond its threshold


def test_a_never_visited_level_inside_the_range_raises_with_the_default_detectors() -> None:
    xs = _staircase(3100)
    for i in range(3000, 3010):
        xs[i] = 52.5  # between levels: no z-score, EWMA or step detector sees anything
    eng = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    raised = [e for i, x in enumerate(xs) for e in eng.process(Sample("pump", "temp", float(i), x))
              if e.state is AlarmState.RAISED]
    assert [e.ts for e in raised] == [3001.0]
    assert "context" in raised[0].detectors


def _bumps(n: int, at: tuple[int, ...], seed: int = 1) -> list[Sample]:
    rng = random.Random(seed)
    return [Sample("pump", "temp", float(i), rng.gauss(50.0, 1.0) + (15.0 if any(a <= i < a + 30 for a in at) else 0.0))
            for i in range(n)]


def test_nab_score_is_discounted_by_recent_raises_and_restores() -> None:
    samples = _bumps(4200, (2000, 2400, 2800))
    eng = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    nab: list[tuple[float, float]] = []  # (raise score in nines, exported NAB score)
    for s in samples:
        for e in eng.process(s):
            if e.state is AlarmState.RAISED:
                nab.append((e.score, eng.nab_score("pump", "temp")))
        if s.ts == 2500.0:
            saved = json.loads(json.dumps(eng.state(), allow_nan=False))
    assert len(nab) == 3
    for k, (score, exported) in enumerate(nab):  # k earlier raises within likelihood.long_window samples
        sc = score - math.log10(1 + k)
        assert exported == pytest.approx(sc / (sc + 4.0))
    assert nab[2][1] < nab[2][0] / (nab[2][0] + 4.0)
    # a restored engine continues with the same discount (the raise history is part of the state)
    b = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    b.load_state(saved)
    after = []
    for s in samples[2501:]:
        for e in b.process(s):
            if e.state is AlarmState.RAISED:
                after.append((e.score, b.nab_score("pump", "temp")))
    assert after == nab[2:]
    # raises older than the long window no longer count
    quiet = DetectionEngine(DetectSettings(likelihood={"long_window": 300}), AlarmSettings(), {})
    scores = [(e.score, quiet.nab_score("pump", "temp")) for s in samples for e in quiet.process(s)
              if e.state is AlarmState.RAISED]
    assert all(x == pytest.approx(s / (s + 4.0)) for s, x in scores)


def test_plain_noise_raises_nothing_with_the_default_novelty() -> None:
    """On plain noise the novelty detector never raises by itself: a raise it takes part in follows a sample
    beyond the z-score threshold (4 sigma) within the likelihood's short window, and such raises stay rare."""
    cfg = DetectSettings()
    raises = 0
    for seed in (7, 11):
        rng = random.Random(seed)
        xs = [rng.gauss(50.0, 1.0) for _ in range(20_000)]
        eng = DetectionEngine(cfg, AlarmSettings(), {})
        for i, x in enumerate(xs):
            for e in eng.process(Sample("pump", "temp", float(i), x)):
                if e.state is AlarmState.RAISED and "context" in e.detectors:
                    raises += 1
                    assert set(e.detectors) - {"context"}
                    recent = xs[max(0, i - cfg.likelihood.short_window + 1): i + 1]
                    assert max(abs(v - 50.0) for v in recent) >= cfg.zscore.threshold
    assert raises <= 1


@pytest.mark.parametrize("seed", range(5))
def test_a_lone_spike_on_a_quantised_signal_raises(seed: int) -> None:
    """A single 8-sigma sample on a quantised signal raises within the likelihood's short window. The
    likelihood averages the last few raw scores, so the spike's own sample is often not yet rare enough while the
    next ones are: the gate (a detector beyond its threshold) stays open for those samples."""
    rng = random.Random(seed)
    xs = [float(round(50.0 + rng.gauss(0.0, 0.6))) for _ in range(3000)]
    sd = statistics.pstdev(xs)
    xs[2500] += 8.0 * sd
    eng = DetectionEngine(DetectSettings(), AlarmSettings(), {})
    raised = [i for i, x in enumerate(xs) for e in eng.process(Sample("pump", "count", float(i), x))
              if e.state is AlarmState.RAISED]
    near = [i for i in raised if 2500 <= i < 2500 + DetectSettings().likelihood.short_window]
    assert near, raised
    assert raised.count(near[0]) == 1
