"""Does streaming partial advice slow generation? Decode speed with streaming off / every 1 s / every step.

    python bench/advice_stream.py [--model DIR] [--reps 3] [--threads 1] [--max-new 0]

Runs the production path: `EngineProcess` (child process, prefix reuse, guided JSON), the same alert prompts,
the three settings interleaved rep by rep so drift on a shared machine hits them alike. Per run it takes the
child's own decode figures (GenResult: tokens/s over wall time and per model step over CPU time, the steadier
one on a busy box). "every step" asks for a partial at every model step (text_every_s=0): the worst case
that `advice.partial_interval_s` never reaches at its default.

On a shared machine the speed difference drowns in noise, so a second phase times the streaming work
itself: the engine in this process, its callback doing what the child's does (one `conn.send` of the
delta to another process), each call timed → cost per partial and its share of the decode time.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.advice import alert_mix  # noqa: E402
from edgeslm.advice.llm import EngineConfig, EngineProcess, LlmEngine  # noqa: E402
from edgeslm.advice.worker import prompt_variants  # noqa: E402

VARIANTS = {"off": None, "every_1s": 1.0, "every_step": 0.0}


def _drain(conn: Any) -> None:
    while conn.recv() is not None:
        pass


def stream_cost(model: Path, threads: int, prompts: list[Any], max_new: int | None) -> dict[str, Any]:
    """Phase 2: time the child's streaming work (pipe send per partial) against the decode time."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    reader = ctx.Process(target=_drain, args=(child,), daemon=True)
    reader.start()
    eng = LlmEngine(EngineConfig(model_dir=str(model), threads=threads))
    eng.load(warmup=False)
    for p in prompts:
        eng.generate(p, time.monotonic() + 600, max_new=max_new)
    out: dict[str, Any] = {}
    for name, every in (("every_1s", 1.0), ("every_step", 0.0)):
        spent = [0.0]
        n = [0]

        def on_text(delta: str, tokens: int, spent: list[float] = spent, n: list[int] = n) -> None:
            t = time.perf_counter()
            parent.send(("partial", (delta, tokens)))
            spent[0] += time.perf_counter() - t
            n[0] += 1

        dec = 0.0
        for p in prompts:
            r = eng.generate(p, time.monotonic() + 600, max_new=max_new, on_text=on_text, text_every_s=every)
            dec += r.decode_s
        out[f"{name}_partials"] = n[0]
        out[f"{name}_us_per_partial"] = round(1e6 * spent[0] / max(1, n[0]), 1)
        out[f"{name}_share_of_decode"] = round(spent[0] / dec, 6) if dec else None
        print(f"cost {name:10} partials {n[0]:5}  {out[f'{name}_us_per_partial']:7.1f} us each  "
              f"{100 * spent[0] / dec:.4f} % of decode time", flush=True)
    parent.send(None)
    reader.join(5)
    eng.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "tests/fixtures/tiny-phi3")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--alerts", type=int, default=4, help="prompts per run (one alert mix, same for all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-new", type=int, default=0, help="cap on answer tokens (0 = the engine's bound)")
    ap.add_argument("--cost-only", action="store_true", help="only phase 2 (the timed streaming work)")
    args = ap.parse_args()
    if args.cost_only:
        prompts = [prompt_variants(ev, None, 4) for ev in alert_mix(args.alerts)]
        out = {"model": args.model.name, "threads": args.threads}
        out.update({f"cost_{k}": v for k, v in stream_cost(args.model, args.threads, prompts,
                                                           args.max_new or None).items()})
        print(json.dumps(out))
        return 0
    eng = EngineProcess(EngineConfig(model_dir=str(args.model), threads=args.threads))
    eng.load(warmup=True, timeout=600)
    prompts = [prompt_variants(ev, None, 4) for ev in alert_mix(args.alerts)]
    for p in prompts:  # fill the prefix cache and the child's code paths once
        eng.generate(p, time.monotonic() + 600, max_new=args.max_new or None)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in VARIANTS}
    partials: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    for rep in range(args.reps):
        order = list(VARIANTS) if rep % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            every = VARIANTS[name]
            n = [0]

            def on_text(delta: str, tokens: int, n: list[int] = n) -> None:
                n[0] += 1

            tok = steps = 0
            dec_s = dec_cpu = 0.0
            for p in prompts:
                r = eng.generate(p, time.monotonic() + 600, max_new=args.max_new or None,
                                 on_text=on_text if every is not None else None, text_every_s=every or 0.0)
                tok += max(0, r.output_tokens - 1)
                steps += max(0, r.steps - 1)
                dec_s += r.decode_s
                dec_cpu += r.decode_cpu_s
            partials[name] += n[0]
            rows[name].append({"decode_tok_s": tok / dec_s, "cpu_ms_per_step": 1000 * dec_cpu / max(1, steps),
                               "tokens": tok})
            print(f"rep {rep} {name:10} decode {tok / dec_s:8.2f} tok/s  {1000 * dec_cpu / max(1, steps):7.3f} "
                  f"ms CPU/step  tokens {tok}  partials {n[0]}", flush=True)
    eng.close()
    out: dict[str, Any] = {"model": args.model.name, "threads": args.threads, "reps": args.reps}
    out.update({f"cost_{k}": v for k, v in stream_cost(args.model, args.threads, prompts,
                                                       args.max_new or None).items()})
    for name, rs in rows.items():
        out[f"{name}_decode_tok_s"] = round(statistics.median(r["decode_tok_s"] for r in rs), 2)
        out[f"{name}_cpu_ms_per_step"] = round(statistics.median(r["cpu_ms_per_step"] for r in rs), 3)
        out[f"{name}_partials"] = partials[name]
    for name in ("every_1s", "every_step"):
        out[f"{name}_ratio"] = round(out[f"{name}_decode_tok_s"] / out["off_decode_tok_s"], 3)
        out[f"{name}_cpu_ratio"] = round(out[f"{name}_cpu_ms_per_step"] / out["off_cpu_ms_per_step"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
