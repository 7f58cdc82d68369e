"""Fault catalogue: the shipped defaults on labelled synthetic series that no benchmark here was tuned on.

NAB and SKAB are what the defaults were chosen on; this bench asks how they behave on signal shapes and faults
a plant has and those corpora barely hold. Each normal family (white noise, autocorrelated AR(1), random walk,
daily cycle, Poisson counts, quantised readings, heavy tails, log-normal, an on/off square wave) gets each fault
once, in the middle of the series, and runs through its own DetectionEngine with the default settings (one
pass, causal, 1 sample a minute):

    spike     one sample 8 standard deviations up        level     +3 sd for 500 samples
    drift     a ramp to +4 sd over 500 samples           variance  deviations from the mean x4 for 500 samples
    stuck     the value frozen for 500 samples           dropout   the reading at 0 for 50 samples

A fault is detected when an alarm is raised, or an open one escalated (updated), between its start and 50
samples after its end; the delay is samples from its start to that event. Every other raise after the first
300 samples is a false one; the "none" column runs the same series without a fault. Standard deviations are
those of the series' first half.

Run from the repo root:  .venv/bin/python bench/faults.py [--seeds 5] [--length 6000] [--out bench/out/faults]
Ends with one JSON line: detection_rate, median_delay, false_per_10k (fault-free runs), false_per_10k_faults.
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import REPO, final_json, machine, parser

from edgeslm.detect.engine import DetectionEngine
from edgeslm.models import AlarmState, Sample
from edgeslm.settings import AlarmSettings, DetectSettings

WARMUP = 300  # raises before this are start-up, not counted
FAULT_LEN = 500
GRACE = 50  # a raise this long after the fault's end still counts as its detection


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.normal(0.0, 1.0, n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "white noise": lambda r, n: 50.0 + r.normal(0.0, 1.0, n),
    "AR(1) 0.95": lambda r, n: 50.0 + _ar1(r, n, 0.95),
    "random walk": lambda r, n: 50.0 + np.cumsum(r.normal(0.0, 0.1, n)),
    "daily cycle": lambda r, n: 50.0 + 10.0 * np.sin(2 * np.pi * np.arange(n) / 1440) + r.normal(0.0, 1.0, n),
    "Poisson(3)": lambda r, n: r.poisson(3.0, n).astype(float),
    "quantised": lambda r, n: np.round(50.0 + r.normal(0.0, 0.6, n)),
    "Student t(3)": lambda r, n: 50.0 + r.standard_t(3, n),
    "log-normal": lambda r, n: r.lognormal(3.0, 0.5, n),
    "on/off": lambda r, n: 50.0 + 5.0 * ((np.arange(n) // 100) % 2) + r.normal(0.0, 0.3, n),
}
FAULTS = ["none", "spike", "level", "drift", "variance", "stuck", "dropout"]


def inject(x: np.ndarray, fault: str, at: int) -> tuple[np.ndarray, int]:
    """The series with the fault from sample `at`; returns it and the fault's length in samples."""
    x = x.copy()
    head = x[:at]
    sd = float(np.std(head)) or 1.0
    mean = float(np.mean(head))
    end = at + FAULT_LEN
    if fault == "spike":
        x[at] += 8.0 * sd
        return x, 1
    if fault == "level":
        x[at:end] += 3.0 * sd
    elif fault == "drift":
        x[at:end] += np.linspace(0.0, 4.0 * sd, FAULT_LEN)
    elif fault == "variance":
        x[at:end] = mean + (x[at:end] - mean) * 4.0
    elif fault == "stuck":
        x[at:end] = x[at]
    elif fault == "dropout":
        x[at:at + 50] = 0.0
        return x, 50
    elif fault != "none":
        raise ValueError(fault)
    return x, FAULT_LEN


def run_one(x: np.ndarray, at: int, length: int, alarm: AlarmSettings) -> tuple[int | None, int]:
    """(delay of the first raise/escalation inside the fault span or None, false raises elsewhere after the
    warm-up)."""
    engine = DetectionEngine(DetectSettings(), alarm, {})
    delay: int | None = None
    false = 0
    for i, v in enumerate(x.tolist()):
        for ev in engine.process(Sample("asset", "signal", 60.0 * i, v)):
            if ev.state is AlarmState.CLEARED:
                continue
            if length and at <= i < at + length + GRACE:
                if delay is None:
                    delay = i - at
            elif i >= WARMUP and ev.state is AlarmState.RAISED:
                false += 1
    return delay, false


def main() -> int:
    ap = parser(__doc__.splitlines()[0], out=REPO / "bench" / "out" / "faults")
    ap.add_argument("--seeds", type=int, default=5, help="series per family and fault (default 5)")
    ap.add_argument("--length", type=int, default=6000, help="samples per series (default 6000)")
    ap.add_argument("--raise-likelihood", type=float, default=None, help="alarm.raise_likelihood instead of the "
                    "shipped default (what a plant with many signals may choose; see docs/detectors.md)")
    args = ap.parse_args()
    n, at = args.length, args.length // 2
    alarm = AlarmSettings() if args.raise_likelihood is None else AlarmSettings(raise_likelihood=args.raise_likelihood)
    if at + FAULT_LEN + GRACE > n or at < WARMUP:
        raise SystemExit(f"faults: --length must be at least {2 * (FAULT_LEN + GRACE)}")
    t0 = time.perf_counter()
    rows = []
    for fam, make in FAMILIES.items():
        for fault in FAULTS:
            delays: list[int] = []
            false = 0
            for seed in range(args.seeds):
                x, length = inject(make(np.random.default_rng(seed), n), fault, at)
                delay, f = run_one(x, at, 0 if fault == "none" else length, alarm)
                false += f
                if delay is not None:
                    delays.append(delay)
            rows.append({"family": fam, "fault": fault, "runs": args.seeds, "detected": len(delays),
                         "median_delay": statistics.median(delays) if delays else None, "false": false,
                         "false_per_10k": 1e4 * false / (args.seeds * (n - WARMUP))})
    elapsed = time.perf_counter() - t0

    print(f"fault catalogue: {len(FAMILIES)} families x {len(FAULTS)} columns x {args.seeds} seeds x {n} samples, "
          f"{elapsed:.0f} s; raise_likelihood {alarm.raise_likelihood}; {machine()}")
    print("cells: detected/runs (median delay in samples), false raises; 'none': false raises per 10k samples\n")
    print(f"{'family':<14}" + "".join(f"{f:>16}" for f in FAULTS))
    for fam in FAMILIES:
        cells = []
        for r in (r for r in rows if r["family"] == fam):
            if r["fault"] == "none":
                cells.append(f"{r['false_per_10k']:.1f}/10k")
            else:
                d = "-" if r["median_delay"] is None else f"{r['median_delay']:g}"
                cells.append(f"{r['detected']}/{r['runs']} ({d}) {r['false']}")
        print(f"{fam:<14}" + "".join(f"{c:>16}" for c in cells))
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "faults.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"\nper cell: {args.out / 'faults.csv'}")

    faulty = [r for r in rows if r["fault"] != "none"]
    clean = [r for r in rows if r["fault"] == "none"]
    delays = [r["median_delay"] for r in faulty if r["median_delay"] is not None]
    span = args.seeds * (n - WARMUP)
    final_json({"detection_rate": round(sum(r["detected"] for r in faulty) / sum(r["runs"] for r in faulty), 4),
                "median_delay": statistics.median(delays) if delays else None,
                "false_per_10k": round(1e4 * sum(r["false"] for r in clean) / (span * len(clean)), 3),
                "false_per_10k_faults": round(1e4 * sum(r["false"] for r in faulty) / (span * len(faulty)), 3)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
