"""NAB: stream all 58 series through the daemon's DetectionEngine with its default settings, score like NAB.

One pass, causal, no per-file tuning: every file is one asset of one engine built from the same
DetectSettings/AlarmSettings defaults the daemon ships with. Results are written in NAB's format
(<out>/<detector>/<category>/<detector>_<file>.csv: timestamp,value,anomaly_score,label) and scored by
edgeslm.detect.nabscore, a reimplementation of NAB's sweeper (thresholds swept per profile, normalised against
the null detector). The anomaly_score is the engine's per-sample NAB score (see DetectionEngine.nab_score).

Run from the repo root:  .venv/bin/python bench/nab.py [--data ../shared/data/nab] [--out bench/out/nab]
[--no-context | --context-orders K]  (variants of the novelty detector; without them: the shipped defaults)

Another labelled corpus in NAB's layout works too: --data DIR with DIR/data/<category>/<file>.csv
(timestamp,value) and DIR/labels/combined_windows.json, or only DIR/labels/combined_labels.json (anomaly
timestamps; windows are then built by NAB's labeller rules: on NAB's own labels this reproduces 57 of its 58
files' windows, the one other is a file NAB's labeller special-cases in code). DIR/config/profiles.json and
DIR/results/final_results.json (the scoreboard) are optional: NAB v1.1's three profiles are built in.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import REPO, SHARED_DATA, final_json, machine, parser

from edgeslm.detect.engine import DetectionEngine
from edgeslm.detect.nabscore import parse_ts, score_corpus, windows_from_labels
from edgeslm.models import Sample
from edgeslm.settings import AlarmSettings, DetectSettings

DETECTOR = "edgeslm"  # NAB splits file names on '_': no underscore here
PROFILES = {"standard": "standard", "reward_low_FP_rate": "reward_low_FP", "reward_low_FN_rate": "reward_low_FN"}


def run_file(engine: DetectionEngine, path: Path, asset: str) -> tuple[list[str], list[str], list[float]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    scores = []
    proc = engine.process
    nab = engine.nab_score
    for r in rows:
        ts = parse_ts(r["timestamp"]).replace(tzinfo=UTC).timestamp()
        proc(Sample(asset, "value", ts, float(r["value"])))
        scores.append(nab(asset, "value"))
    return [r["timestamp"] for r in rows], [r["value"] for r in rows], scores


def load_windows(data: Path, files: list[Path]) -> tuple[dict[str, list[tuple[datetime, datetime]]], str]:
    """The corpus's anomaly windows: labels/combined_windows.json, or, for a corpus labelled with anomaly
    timestamps only, windows built from labels/combined_labels.json by NAB's labeller rules."""
    wpath, lpath = data / "labels" / "combined_windows.json", data / "labels" / "combined_labels.json"
    if wpath.exists():
        raw = json.loads(wpath.read_text())
        return {k: [(parse_ts(a), parse_ts(b)) for a, b in v] for k, v in raw.items()}, str(wpath)
    if not lpath.exists():
        raise SystemExit(f"nab: no labels: neither {wpath} nor {lpath} exists (NAB corpus layout: "
                         "data/<category>/<file>.csv and labels/combined_windows.json)")
    labels = json.loads(lpath.read_text())
    out = {}
    for path in files:
        rel = f"{path.parent.name}/{path.name}"
        with path.open(newline="") as f:
            ts = [parse_ts(r["timestamp"]) for r in csv.DictReader(f)]
        out[rel] = windows_from_labels(ts, [parse_ts(t) for t in labels.get(rel, [])])
    return out, f"{lpath} (windows by NAB's labeller rules)"


def main() -> int:
    ap = parser(__doc__.splitlines()[0], data=SHARED_DATA / "nab", out=REPO / "bench" / "out" / "nab")
    ap.add_argument("--context-orders", type=int, default=None, help="novelty detector's orders (default: the "
                    "shipped default, 1; 0 = never-seen levels only)")
    ap.add_argument("--no-context", action="store_true", help="without the novelty detector (the 'before')")
    args = ap.parse_args()
    data_dir: Path = args.data / "data"
    files = sorted(data_dir.glob("*/*.csv"))
    if not files:
        raise SystemExit(f"nab: no series under {data_dir} (expected data/<category>/<file>.csv)")
    windows, windows_src = load_windows(args.data, files)
    prof_path = args.data / "config" / "profiles.json"
    profiles = json.loads(prof_path.read_text()) if prof_path.exists() else None  # else NAB v1.1's
    ctx: dict[str, object] = {"enabled": not args.no_context}
    if args.context_orders is not None:
        ctx["orders"] = args.context_orders
    detect = DetectSettings(context=ctx)
    engine = DetectionEngine(detect, AlarmSettings(), {})
    t0 = time.perf_counter()
    n = 0
    results = {}
    for path in files:
        rel = f"{path.parent.name}/{path.name}"
        ts, vals, scores = run_file(engine, path, rel)
        n += len(ts)
        wins = windows.get(rel, [])
        dts = [parse_ts(t) for t in ts]
        out = args.out / DETECTOR / path.parent.name / f"{DETECTOR}_{path.name}"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score", "label"])
            for t, dt, v, s in zip(ts, dts, vals, scores, strict=True):
                w.writerow([t, v, repr(s), int(any(a <= dt <= b for a, b in wins))])
        results[rel] = (dts, [float(repr(s)) for s in scores])
    elapsed = time.perf_counter() - t0
    scores = score_corpus(results, windows, profiles)
    board_path = args.data / "results" / "final_results.json"
    published = json.loads(board_path.read_text()) if board_path.exists() else {}

    print(f"NAB: {len(files)} files, {n} rows, engine+write {elapsed:.1f} s ({n / elapsed:,.0f} rows/s); {machine()}")
    print(f"results: {args.out / DETECTOR}; windows: {windows_src}; profiles: "
          f"{prof_path if profiles is not None else 'NAB v1.1 (built in)'}")
    for prof, ps in scores.items():
        print(f"  {prof:<20} threshold {ps.threshold:.6f}  raw {ps.raw:9.3f}  null {ps.null:8.1f}  "
              f"normalised {ps.normalized:6.2f}")
    board = dict(published)
    board[f"{DETECTOR} (this run)"] = {p: s.normalized for p, s in scores.items()}
    print(f"\n{'detector':<28}{'standard':>10}{'low FP':>10}{'low FN':>10}")
    for name, row in sorted(board.items(), key=lambda kv: -kv[1]["standard"]):
        mark = "  <--" if name.startswith(DETECTOR) else ""
        print(f"{name:<28}{row['standard']:>10.1f}{row['reward_low_FP_rate']:>10.1f}"
              f"{row['reward_low_FN_rate']:>10.1f}{mark}")
    final_json({PROFILES.get(p, p): round(s.normalized, 3) for p, s in scores.items()}
               | {"results_dir": str(args.out)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
