"""Alert → advice benchmark on the Phi-3-mini-shaped model, beside the bare onnxruntime-genai loop.

    python bench/advice.py [--model DIR] [--out FILE] [--alerts 6] [--threads 0]

Phases (one model in memory at a time):
 1. in this process: prompt-token distribution of a realistic alert mix (real tokenizer); the bare loop
    of ../shared/tools/phi3-shaped-model/bench.py on the median prompt; our engine on the same prompt
    without prefix reuse (same work), guided with and without fast-forward and unguided → prefill_ratio,
    decode_ratio (production set-up: answer tokens/s) and decode_step_ratio (per model step), ours / bare;
    wall-clock and CPU-time (steadier on a shared machine);
 2. the real AdviceWorker (child process, prefix reuse), alerts fed one after another → alert → advice
    latency p50/p95, time to first token, tokens; meanwhile a Python counting thread stands in for the
    detector and its rate is compared with its rate at idle (GIL check);
 3. the worker without prefix reuse → TTFT without reuse.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeslm.advice.evidence import build_prompt  # noqa: E402
from edgeslm.advice.llm import EngineConfig, LlmEngine, bare_loop  # noqa: E402
from edgeslm.advice.worker import AdviceWorker, prompt_variants  # noqa: E402
from edgeslm.models import Advice, AdviceStatus, AlarmEvent, AlarmState, Severity, SignalEvidence  # noqa: E402
from edgeslm.settings import Settings  # noqa: E402

DEFAULT_MODEL = Path("~/.cache/edgeslm/phi3-mini-shaped-int4").expanduser()
# Reference speeds of this model on a quiet 2-core gateway (../shared/tools/phi3-shaped-model/README.md):
# used only for the clearly labelled estimate est_p50_s_ref, from the measured token and step counts.
REF_PREFILL_TOK_S = 26.9
REF_DECODE_STEP_S = 1 / 6.6

ASSETS: dict[str, dict[str, Any]] = {
    "pump-7": {"machine_type": "centrifugal pump, 15 kW", "failure_modes": ["bearing wear", "cavitation"],
               "notes": "Bearings greased every 3 months. Mechanical seal replaced 2026-05.",
               "signals": {"bearing_temp": {"unit": "degC", "high": 95.0}, "vib_rms": {"unit": "mm/s"},
                           "discharge_press": {"unit": "bar"}, "motor_current": {"unit": "A"}}},
    "compressor-2": {"machine_type": "screw compressor, 55 kW", "failure_modes": ["oil separator clogging",
                                                                               "inlet valve wear"],
                     "notes": "Oil changed 2026-09. Runs hot in summer.",
                     "signals": {"oil_temp": {"unit": "degC"}, "outlet_press": {"unit": "bar"},
                                 "motor_current": {"unit": "A"}}},
    "conveyor-4": {"machine_type": "belt conveyor drive", "failure_modes": ["belt slip", "gearbox wear"],
                   "signals": {"motor_current": {"unit": "A"}, "belt_speed": {"unit": "m/s"},
                               "gearbox_temp": {"unit": "degC"}}},
    "fan-3": {"machine_type": "cooling tower fan", "failure_modes": ["blade imbalance"],
              "signals": {"vib_rms": {"unit": "mm/s"}, "motor_current": {"unit": "A"}}},
}
BASE = {"bearing_temp": 61.0, "vib_rms": 2.2, "discharge_press": 6.1, "motor_current": 22.0, "oil_temp": 78.0,
        "outlet_press": 7.5, "belt_speed": 1.8, "gearbox_temp": 55.0}


def alert_mix(n: int, seed: int = 7) -> list[AlarmEvent]:
    """Realistic alerts: mostly medium/low, 1-3 contributing signals, the asset's own signals."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        asset = rnd.choice(list(ASSETS))
        names = list(ASSETS[asset]["signals"])
        k = min(len(names), rnd.choices([1, 2, 3], [0.45, 0.4, 0.15])[0])
        sigs = []
        for name in rnd.sample(names, k):
            base = BASE[name]
            std = base * rnd.uniform(0.02, 0.06)
            dev = rnd.uniform(3, 12) * rnd.choice([1, 1, 1, -1])
            mean = base + dev * std
            sigs.append(SignalEvidence(signal=name, value=round(mean + rnd.uniform(-1, 1) * std, 2),
                                       window_mean=round(mean, 2), window_min=round(mean - 2 * std, 2),
                                       window_max=round(mean + 2 * std, 2), baseline_mean=base,
                                       baseline_std=round(std, 3), score=abs(dev), detectors=("zscore",),
                                       unit=ASSETS[asset]["signals"][name].get("unit", "")))
        sigs.sort(key=lambda s: -s.score)
        sev = rnd.choices(list(Severity), [0.3, 0.4, 0.2, 0.1])[0]
        now = time.time()
        out.append(AlarmEvent(alarm_id=f"bench-{i}", asset=asset, state=AlarmState.RAISED, severity=sev, ts=now,
                              started_ts=now - rnd.uniform(10, 120), detectors=("zscore", "cusum")[: rnd.randint(1, 2)],
                              signals=tuple(sigs), score=max(s.score for s in sigs)))
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[i]


class Counter:
    """A pure-Python loop standing in for the detector thread: its rate drops if someone holds the GIL.
    It runs only while measuring: left spinning it would take a core from the model."""

    @staticmethod
    def rate(seconds: float) -> float:
        n = 0
        stop = threading.Event()

        def spin() -> None:
            nonlocal n
            while not stop.is_set():
                n += 1

        t = threading.Thread(target=spin, name="fake-detector", daemon=True)
        t0 = time.perf_counter()
        t.start()
        time.sleep(seconds)
        stop.set()
        t.join()
        return n / (time.perf_counter() - t0)


def run_worker(model: Path, threads: int, events: list[AlarmEvent], prefix_reuse: bool,
               counter: Counter | None) -> tuple[list[Advice], dict[str, Any]]:
    s = Settings(subscriptions=[{"topic": "plant/#"}], assets=ASSETS,
                 advice={"model_dir": model, "threads": threads, "prefix_reuse": prefix_reuse, "deadline_s": 300,
                         "isolation": "process", "queue_size": 8})
    done: list[Advice] = []
    cv = threading.Condition()

    def publish(a: Advice) -> None:
        with cv:
            done.append(a)
            cv.notify_all()

    def on_status(ev: AlarmEvent, st: AdviceStatus, reason: str | None) -> None:
        pass

    w = AdviceWorker(s, publish, on_status)
    t0 = time.perf_counter()
    w.start()
    print(f"  worker start (load + warm-up + prefix): {time.perf_counter() - t0:.1f} s; {w.describe()}", flush=True)
    rates: list[float] = []
    if counter is not None:
        # A probe alert, not counted: the detector stand-in's rate while the child generates it.
        probe = dataclasses.replace(events[0], alarm_id="probe", asset="probe-asset")
        w.submit(probe)
        time.sleep(1.0)
        rates.append(counter.rate(3.0))
        with cv:
            cv.wait_for(lambda: len(done) > 0, 600)
        done.clear()
    for i, ev in enumerate(events):
        w.submit(ev)
        with cv:
            cv.wait_for(lambda n=i: len(done) > n, 600)
        a = done[i]
        x = a.extra
        print(f"  {ev.alarm_id} {ev.asset:13s} {ev.severity.value:8s} {a.source:5s} {a.latency_ms / 1000:6.1f} s  "
              f"prompt {x.get('prompt_tokens')} (reused {x.get('reused_tokens')}) out {x.get('output_tokens')} "
              f"in {x.get('steps')} steps "
              f"ttft {x.get('ttft_ms', 0) / 1000:.1f} s {x.get('stop', '')} {a.reason or ''}", flush=True)
    stats = w.stats()
    child_rss = max((a.extra.get("rss_mb", 0.0) for a in done), default=0.0)
    w.stop(30)
    stats["gen_rate"] = statistics.mean(rates) if rates else None
    stats["child_rss_mb"] = child_rss
    return done, stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, default=None, help="also write the result JSON here")
    ap.add_argument("--alerts", type=int, default=6, help="alerts through the worker with prefix reuse")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = one per core)")
    ap.add_argument("--bare-new", type=int, default=64, help="forced new tokens in the bare loop")
    a = ap.parse_args()
    if not (a.model / "genai_config.json").is_file():
        print(f"no model at {a.model}: build it with ../shared/tools/phi3-shaped-model/build.sh", file=sys.stderr)
        return 2
    settings = Settings(subscriptions=[{"topic": "plant/#"}], assets=ASSETS)
    mix = alert_mix(40)

    # ---- 1: tokens, bare loop vs ours on the same prompt (no reuse: same work)
    print(f"model {a.model}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    eng = LlmEngine(EngineConfig(model_dir=str(a.model), threads=a.threads, prefix_reuse=False))
    info = eng.load(warmup=False)
    print(f"load {info.load_s:.1f} s, {info.threads} threads", flush=True)
    counts = [len(eng.render(prompt_variants(ev, settings.assets.get(ev.asset), 4)[0])) for ev in mix]
    med_i = sorted(range(len(mix)), key=lambda i: counts[i])[len(mix) // 2]
    ev = mix[med_i]
    prompt = build_prompt(ev, settings.assets.get(ev.asset))
    ids = eng.render(prompt)
    print(f"prompt tokens over {len(mix)} alerts: min {min(counts)} p50 {pct(counts, 50):.0f} "
          f"p90 {pct(counts, 90):.0f} max {max(counts)}; median prompt: {len(ids)} tokens", flush=True)
    # Interleaved bare / ours, twice: the machine's load drifts; each variant is averaged over its two runs.
    # "step": ours guided without fast-forward, one token per model step like the bare loop (apples to apples);
    # "prod": the production set-up (guided + fast-forward): tokens of the answer per second;
    # "unguided": our loop without guidance, to separate the loop's cost from the guidance's.
    variants = {"step": EngineConfig(model_dir=str(a.model), threads=a.threads, prefix_reuse=False,
                                     fast_forward=False),
                "prod": EngineConfig(model_dir=str(a.model), threads=a.threads, prefix_reuse=False,
                                     fast_forward=True),
                "unguided": EngineConfig(model_dir=str(a.model), threads=a.threads, prefix_reuse=False,
                                         guided=False, max_new_tokens=a.bare_new)}
    bares: list[dict[str, float]] = []
    runs: dict[str, list[Any]] = {k: [] for k in variants}
    for rep in range(2):
        b = bare_loop(eng, ids, a.bare_new)
        bares.append(b)
        print(f"bare loop #{rep + 1}: prefill {b['prefill_s']:.2f} s ({b['prefill_tok_s']:.1f} tok/s), "
              f"TTFT {b['ttft_s']:.2f} s, {b['new_tokens']} tokens, decode {b['decode_tok_s']:.2f} tok/s", flush=True)
        for name, cfg in variants.items():
            eng.cfg = cfg
            r = eng.generate([prompt], deadline=time.monotonic() + 600)
            runs[name].append(r)
            print(f"ours {name} #{rep + 1}: prefill {r.prefill_s:.2f} s ({r.prefill_tok_s:.1f} tok/s), TTFT "
                  f"{r.ttft_s:.2f} s, {r.output_tokens} tokens in {r.steps} steps, decode {r.decode_tok_s:.2f} tok/s, "
                  f"stop {r.stop}", flush=True)

    def cpu_per_token(rs: list[Any]) -> tuple[float, float]:
        return (statistics.mean(r.prefill_cpu_s / (r.prompt_tokens - r.reused_tokens) for r in rs),
                statistics.mean(r.decode_cpu_s / max(1, r.steps - 1) for r in rs))

    bare_cpu = (statistics.mean(b["prefill_cpu_s"] / len(ids) for b in bares),
                statistics.mean(b["decode_cpu_s"] / (b["new_tokens"] - 1) for b in bares))
    # CPU time per token/step, bare ÷ ours: the work done, which the neighbours' load changes little.
    cpu_ratios = {k: (bare_cpu[0] / cpu_per_token(v)[0], bare_cpu[1] / cpu_per_token(v)[1]) for k, v in runs.items()}
    for k, (pr, dr) in cpu_ratios.items():
        print(f"CPU time per token/step, bare/ours {k}: prefill {pr:.3f}, decode {dr:.3f}", flush=True)
    bare_prefill = statistics.mean(b["prefill_tok_s"] for b in bares)
    bare_decode = statistics.mean(b["decode_tok_s"] for b in bares)
    ours_prefill = statistics.mean(r.prefill_tok_s for r in runs["step"] + runs["prod"])
    ours_decode = statistics.mean(r.decode_tok_s for r in runs["prod"])
    ours_step_decode = statistics.mean(r.decode_tok_s for r in runs["step"])
    eng.close()
    del eng
    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # ---- 2: the worker with prefix reuse; a fake detector thread measures GIL pressure
    counter = Counter()
    idle_rate = counter.rate(3.0)
    events = alert_mix(a.alerts, seed=11)
    print(f"worker, prefix reuse, {len(events)} alerts one after another:", flush=True)
    done, st = run_worker(a.model, a.threads, events, True, counter)
    lat = [d.latency_ms / 1000 for d in done]
    ttft_reuse = [d.extra["ttft_ms"] / 1000 for d in done if "ttft_ms" in d.extra]
    dec = [d.extra.get("decode_tok_s", 0.0) for d in done if d.extra.get("decode_tok_s")]
    outs = [d.extra.get("output_tokens", 0) for d in done]
    ests = [(d.extra["prompt_tokens"] - d.extra["reused_tokens"]) / REF_PREFILL_TOK_S
            + d.extra.get("steps", d.extra["output_tokens"]) * REF_DECODE_STEP_S
            for d in done if "prompt_tokens" in d.extra]

    # ---- 3: without prefix reuse (2 alerts)
    print("worker, no prefix reuse, 2 alerts:", flush=True)
    done_nr, _ = run_worker(a.model, a.threads, events[:2], False, None)
    ttft_noreuse = [d.extra["ttft_ms"] / 1000 for d in done_nr if "ttft_ms" in d.extra]

    result = {
        "p50_s": round(pct(lat, 50), 2), "p95_s": round(pct(lat, 95), 2),
        "ttft_s": round(statistics.median(ttft_noreuse), 2) if ttft_noreuse else None,
        "ttft_prefix_reuse_s": round(statistics.median(ttft_reuse), 2) if ttft_reuse else None,
        "decode_tok_s": round(statistics.median(dec), 2) if dec else None,
        "decode_ratio": round(ours_decode / bare_decode, 3) if bare_decode else None,
        "decode_step_ratio": round(ours_step_decode / bare_decode, 3) if bare_decode else None,
        "prefill_ratio": round(ours_prefill / bare_prefill, 3) if bare_prefill else None,
        "prompt_tokens_p50": int(pct(counts, 50)),
        "rss_mb": round(max(parent_rss, st["child_rss_mb"])),
        "prompt_tokens_p90": int(pct(counts, 90)), "prompt_tokens_max": max(counts),
        "output_tokens_p50": int(pct(outs, 50)) if outs else None,
        "steps_p50": int(pct([d.extra.get("steps", 0) for d in done], 50)),
        "est_p50_s_ref": round(pct(ests, 50), 1) if ests else None,
        "sources": {s: sum(1 for d in done if d.source == s) for s in ("model", "rules")},
        "bare_prefill_tok_s": round(bare_prefill, 1), "bare_decode_tok_s": round(bare_decode, 2),
        "ours_prefill_tok_s": round(ours_prefill, 1), "ours_decode_tok_s": round(ours_decode, 2),
        "cpu_prefill_ratio": round(cpu_ratios["step"][0], 3), "cpu_decode_step_ratio": round(cpu_ratios["step"][1], 3),
        "cpu_decode_step_ratio_unguided": round(cpu_ratios["unguided"][1], 3),
        "detector_rate_ratio": round(st["gen_rate"] / idle_rate, 3) if st.get("gen_rate") else None,
        "alerts": len(done), "threads": info.threads, "load_avg": round(os.getloadavg()[0], 2),
    }
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
