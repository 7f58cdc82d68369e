"""Engine throughput on one core with the default detector set (the daemon's defaults).

Synthetic plant: 50 assets x 4 signals of noisy sine telemetry with occasional excursions, fed through
DetectionEngine.process one Sample at a time (the daemon's hot path), after a warm-up pass that is not timed.
Run from the repo root:  .venv/bin/python bench/detect_speed.py [--samples 400000] [--no-context]
[--context-orders K] [--compiled]

--compiled also builds the detectors with mypyc (edgeslm/accel.py; needs mypy and a C compiler) into a temporary
folder and times pure and compiled engines in alternating child processes (3 each), printing both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# --root DIR (internal, for --compiled): import edgeslm from DIR (a compiled build) instead of this checkout
sys.path.insert(0, sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv
                else str(Path(__file__).resolve().parent.parent))

from _common import final_json, machine, parser

from edgeslm import accel
from edgeslm.detect.engine import DetectionEngine
from edgeslm.models import Sample
from edgeslm.settings import AlarmSettings, DetectSettings

REPO = str(Path(__file__).resolve().parent.parent)


def make(n: int, assets: int = 50, signals: int = 4, seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    per_round = assets * signals
    for k in range(n // per_round):
        for a in range(assets):
            for s in range(signals):
                v = 10.0 * s + math.sin(k / 50.0 + a) + rng.gauss(0.0, 0.3)
                if rng.random() < 0.0005:
                    v += 8.0
                out.append(Sample(f"asset{a}", f"sig{s}", float(k), v))
    return out


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=400_000, help="timed samples (default 400000)")
    p.add_argument("--no-context", action="store_true", help="without the novelty detector (to see its cost)")
    p.add_argument("--context-orders", type=int, default=None, help="novelty detector's orders (default: the "
                   "shipped default)")
    p.add_argument("--compiled", action="store_true", help="also time the mypyc-compiled detectors (ratio)")
    p.add_argument("--root", help=argparse.SUPPRESS)  # internal: the child processes of --compiled
    args = p.parse_args()
    if args.compiled:
        return compare()
    ctx: dict[str, object] = {"enabled": not args.no_context}
    if args.context_orders is not None:
        ctx["orders"] = args.context_orders
    detect = DetectSettings(context=ctx)
    engine = DetectionEngine(detect, AlarmSettings(), {})
    warm = make(100_000, seed=1)
    engine.process_many(warm)
    samples = make(args.samples, seed=2)
    samples = [Sample(s.asset, s.signal, s.ts + 1e6, s.value) for s in samples]
    proc = engine.process
    t0 = time.perf_counter()
    events = 0
    for s in samples:
        ev = proc(s)
        if ev:
            events += len(ev)
    dt = time.perf_counter() - t0
    rate = len(samples) / dt
    print(f"detect_speed: {len(samples)} samples in {dt:.2f} s = {rate:,.0f} samples/s "
          f"({1e6 / rate:.1f} us/sample), {events} alarm events; detectors "
          f"{'compiled (mypyc)' if accel.compiled_in_use() else 'pure Python'}; {engine.stats()}")
    print(f"machine: {machine()}")
    final_json({"samples_per_s": round(rate)})
    return 0


def compare() -> int:
    """Pure vs compiled detectors, alternating child processes of this bench on the same machine."""
    child = [a for a in sys.argv[1:] if a != "--compiled"]
    with tempfile.TemporaryDirectory(prefix="edgeslm-compiled-") as tmp:
        t0 = time.perf_counter()
        root = accel.build(Path(tmp))
        print(f"compiled {len(accel.COMPILED_MODULES)} detector modules with mypyc in {time.perf_counter() - t0:.0f} s")
        rates: dict[str, list[int]] = {"pure": [], "compiled": []}
        for _ in range(3):
            for kind, where in (("pure", REPO), ("compiled", str(root))):
                out = subprocess.run([sys.executable, __file__, *child, "--root", where], capture_output=True,
                                     text=True, check=True).stdout
                rates[kind].append(json.loads(out.strip().splitlines()[-1])["samples_per_s"])
                print(f"  {kind:<8} {rates[kind][-1]:>8,} samples/s")
    pure, comp = statistics.median(rates["pure"]), statistics.median(rates["compiled"])
    print(f"median of 3: pure {pure:,.0f} samples/s ({1e6 / pure:.1f} us/sample), compiled {comp:,.0f} "
          f"({1e6 / comp:.1f} us/sample): x{comp / pure:.2f}; machine: {machine()}")
    final_json({"samples_per_s": round(pure), "compiled_samples_per_s": round(comp),
                "compiled_ratio": round(comp / pure, 3)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
