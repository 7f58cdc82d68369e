"""The local model: the ONLY module that imports onnxruntime_genai.

`LlmEngine` loads an onnxruntime-genai model folder once and turns a `Prompt` into raw text with a
deadline, a token bound and (optionally) guided JSON. With prefix reuse it keeps one generator and its
KV cache between requests: a new prompt rewinds to the longest common token prefix with what is
cached (the system prompt and, for the same asset, the asset context) and prefills only the rest.
Guidance state is reset by `rewind_to`, so one guided generator serves every request; the schema is
therefore fixed (it cannot depend on the alert).

`EngineProcess` runs an `LlmEngine` in a spawned child process with the same interface: onnxruntime-
genai 0.18 keeps the GIL while it computes, so in-process generation would stall detection.

Streaming: `generate(..., on_text=cb, text_every_s=s)` calls `cb(delta, output_tokens)` with the text
decoded since the last call, at most every `s` seconds (checked between model steps). From the child the
deltas travel on the request's pipe as ("partial", ...) messages ahead of the final answer.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import onnxruntime_genai as og
import structlog

from edgeslm.advice.evidence import Prompt
from edgeslm.advice.schema import advice_json_schema

log = structlog.get_logger("edgeslm.advice.llm")

TextFn = Callable[[str, int], None]  # (text decoded since the last call, output tokens so far)

WARMUP_PROMPT = Prompt(system="You check that a model works.", user='Reply with a JSON advice object for "test".')


class LlmError(RuntimeError):
    """The model could not be loaded or could not generate; the message is the reason for the fallback."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model_dir: str
    provider: str = "cpu"
    threads: int = 0
    guided: bool = True
    fast_forward: bool = True
    prefix_reuse: bool = True
    max_new_tokens: int = 256
    max_prompt_tokens: int = 512


@dataclass(slots=True)
class LoadInfo:
    name: str
    load_s: float
    rss_mb: float
    threads: int
    provider: str
    warmup_s: float | None = None


@dataclass(slots=True)
class GenResult:
    text: str
    prompt_tokens: int
    reused_tokens: int  # prompt tokens already in the KV cache (not prefilled again)
    output_tokens: int
    prefill_s: float  # append_tokens of the new part of the prompt
    ttft_s: float  # from start of request to first new token (includes guidance set-up)
    decode_s: float  # first → last new token
    total_s: float
    stop: str  # "eos", "max_new", "deadline", "max_length"
    steps: int = 0  # generate_next_token calls (fewer than output_tokens with fast-forward)
    prefill_cpu_s: float = 0.0  # process CPU time: steadier than wall time on a shared machine
    decode_cpu_s: float = 0.0
    rss_mb: float = 0.0
    variant: int = 0  # index of the prompt variant used (0 = full prompt)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def decode_tok_s(self) -> float:
        return (self.output_tokens - 1) / self.decode_s if self.output_tokens > 1 and self.decode_s > 0 else 0.0

    @property
    def prefill_tok_s(self) -> float:
        n = self.prompt_tokens - self.reused_tokens
        return n / self.prefill_s if self.prefill_s > 0 else 0.0


def rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_name(model_dir: Path) -> str:
    """A readable name for a model folder: its release subfolder name, or the folder name."""
    return model_dir.resolve().name


def resolve_threads(threads: int) -> int:
    return threads if threads > 0 else (os.cpu_count() or 1)


class LlmEngine:
    """One loaded model; not thread-safe: the advisor calls it from one thread (or one child process)."""

    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg
        self.model: og.Model | None = None
        self.tok: og.Tokenizer | None = None
        self._schema = json.dumps(advice_json_schema())
        self._gen: og.Generator | None = None
        self._cached: list[int] = []  # tokens whose KV is in self._gen
        self._max_length = 0
        self._abort = False
        self.info: LoadInfo | None = None

    # ------------------------------------------------------------------ load
    def load(self, warmup: bool = True) -> LoadInfo:
        model_dir = Path(self.cfg.model_dir)
        if not (model_dir / "genai_config.json").is_file():
            raise LlmError(f"no genai_config.json in {model_dir}")
        threads = resolve_threads(self.cfg.threads)
        t0 = time.perf_counter()
        try:
            c = og.Config(str(model_dir))
            c.clear_providers()
            if self.cfg.provider != "cpu":
                c.append_provider(self.cfg.provider)
            # onnxruntime-genai uses ONE intra-op thread on CPU unless told otherwise (half speed on 2 cores).
            c.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
            self.model = og.Model(c)
            self.tok = og.Tokenizer(self.model)
        except Exception as e:
            raise LlmError(f"cannot load model from {model_dir}: {e}") from e
        ctx_len = _context_length(model_dir)
        self._max_length = min(ctx_len, self.cfg.max_prompt_tokens + self.cfg.max_new_tokens + 8)
        self.info = LoadInfo(name=model_name(model_dir), load_s=time.perf_counter() - t0, rss_mb=rss_mb(),
                             threads=threads, provider=self.cfg.provider)
        log.info("advice_model_loaded", model=self.info.name, load_s=round(self.info.load_s, 2),
                 rss_mb=round(self.info.rss_mb), threads=threads, provider=self.cfg.provider)
        if warmup:
            t1 = time.perf_counter()
            r = self.generate([WARMUP_PROMPT], deadline=time.monotonic() + 600, max_new=8)
            self.info.warmup_s = time.perf_counter() - t1
            self.info.rss_mb = rss_mb()
            log.info("advice_model_warmup", s=round(self.info.warmup_s, 2), tokens=r.output_tokens,
                     rss_mb=round(self.info.rss_mb))
        return self.info

    # ------------------------------------------------------------------ prompt
    def render(self, prompt: Prompt) -> list[int]:
        """Chat template + tokenizer → prompt token ids."""
        assert self.tok is not None
        text = self.tok.apply_chat_template(json.dumps(prompt.messages()), add_generation_prompt=True)
        return [int(t) for t in self.tok.encode(text)]

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.render(prompt))

    def warm_prefix(self, prompt: Prompt) -> int:
        """Prefill the system part of `prompt` so the next request for it starts warm; returns tokens cached."""
        if not self.cfg.prefix_reuse:
            return 0
        ids = self.render(prompt)
        gen = self._generator()
        n = _common_prefix(self._cached, ids)
        # Cache only up to the user turn: the rest differs per alert.
        sys_ids = self.render(Prompt(system=prompt.system, user=""))
        target = _common_prefix(sys_ids, ids)
        if target > n:
            self._rewind(gen, n)
            gen.append_tokens(ids[n:target])
            self._cached = ids[:target]
        return len(self._cached)

    # ------------------------------------------------------------------ generation
    def _new_generator(self) -> og.Generator:
        assert self.model is not None
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=self._max_length, do_sample=False)
        if self.cfg.guided:
            params.set_guidance("json_schema", self._schema, enable_ff_tokens=self.cfg.fast_forward)
        return og.Generator(self.model, params)

    def _generator(self) -> og.Generator:
        if self._gen is None:
            self._gen = self._new_generator()
            self._cached = []
        return self._gen

    def _rewind(self, gen: og.Generator, n: int) -> None:
        if n < len(self._cached):
            gen.rewind_to(n)
            self._cached = self._cached[:n]

    def _pick(self, prompts: Sequence[Prompt]) -> tuple[int, list[int]]:
        n = 0
        for i, p in enumerate(prompts):
            ids = self.render(p)
            if len(ids) <= self.cfg.max_prompt_tokens:
                return i, ids
            n = len(ids)
        # Cutting a chat prompt would drop the assistant turn marker: refuse instead (→ rules).
        raise LlmError(f"prompt of {n} tokens exceeds max_prompt_tokens ({self.cfg.max_prompt_tokens})")

    def generate(self, prompts: Sequence[Prompt], deadline: float, max_new: int | None = None,
                 on_text: TextFn | None = None, text_every_s: float = 0.0) -> GenResult:
        """Generate for the first prompt variant that fits max_prompt_tokens; stop at the deadline
        (time.monotonic()), at max_new tokens or at the end of the JSON. With `on_text`, new text is
        handed over as it is decoded: the first piece at once, then at most every `text_every_s`."""
        if self.model is None or self.tok is None:
            raise LlmError("model not loaded")
        max_new = min(max_new or self.cfg.max_new_tokens, self.cfg.max_new_tokens)
        t0 = time.perf_counter()
        variant, ids = self._pick(prompts)
        if variant:
            log.info("advice_prompt_shortened", variant=variant, tokens=len(ids))
        try:
            return self._generate(ids, deadline, max_new, t0, variant, on_text, text_every_s)
        except Exception as e:
            # The generator's state is unknown after an error: start from a fresh one next time.
            self._gen = None
            self._cached = []
            raise LlmError(f"generation failed: {e}") from e

    def _generate(self, ids: list[int], deadline: float, max_new: int, t0: float, variant: int,
                  on_text: TextFn | None = None, text_every_s: float = 0.0) -> GenResult:
        assert self.tok is not None
        if self.cfg.prefix_reuse:
            gen = self._generator()
            # Keep at least the last prompt token to prefill: its logits start the answer. Rewinding also
            # resets the guidance state, so the cached generator is reusable for a new guided answer.
            reuse = min(_common_prefix(self._cached, ids), len(ids) - 1)
            if reuse == len(self._cached) and reuse > 0:
                reuse -= 1  # rewind_to(current length) is a no-op and would not reset guidance
            self._rewind(gen, reuse)
            if reuse == 0 and self._cached:
                gen = self._gen = self._new_generator()
                self._cached = []
        else:
            reuse = 0
            self._gen = None
            gen = self._new_generator()
        budget = min(max_new, self._max_length - len(ids))
        if budget <= 0:
            raise LlmError(f"prompt of {len(ids)} tokens leaves no room to answer")
        t1, c1 = time.perf_counter(), time.process_time()
        gen.append_tokens(ids[reuse:])
        self._cached = list(ids)
        t2, c2 = time.perf_counter(), time.process_time()
        stream = self.tok.create_stream()
        pieces: list[str] = []
        n_out = steps = 0
        t_first = t_last = t2
        c_first = c_last = c2
        stop = "eos"
        sent = 0  # pieces already handed to on_text
        next_text = 0.0  # time.monotonic() from which on_text may be called again (0: the first piece at once)
        while True:
            if gen.is_done():
                stop = "max_length" if len(ids) + n_out >= self._max_length else "eos"
                break
            if n_out >= budget:
                stop = "max_new"
                break
            now = time.monotonic()
            if now >= deadline or self._abort:
                stop = "deadline"
                break
            if on_text is not None and now >= next_text and len(pieces) > sent:
                # Between steps, on the clock already read for the deadline: one join and one call per
                # interval; what is decoded after the last call is in the result's text.
                delta = "".join(pieces[sent:])
                sent = len(pieces)
                if delta:
                    on_text(delta, n_out)
                    next_text = now + text_every_s
            gen.generate_next_token()
            steps += 1
            seq = gen.get_sequence(0)
            new = [int(t) for t in seq[len(ids) + n_out:]]  # several with fast-forward tokens
            for t in new:
                pieces.append(stream.decode(t))
            if n_out == 0:
                t_first, c_first = time.perf_counter(), time.process_time()
            n_out += len(new)
            t_last, c_last = time.perf_counter(), time.process_time()
        seq = gen.get_sequence(0)
        self._cached = [int(t) for t in seq]
        if not self.cfg.prefix_reuse:
            self._gen = None
        text = "".join(pieces).strip()
        return GenResult(text=text, prompt_tokens=len(ids), reused_tokens=reuse, output_tokens=n_out,
                         prefill_s=t2 - t1, ttft_s=(t_first - t0) if n_out else 0.0,
                         decode_s=t_last - t_first, total_s=time.perf_counter() - t0, stop=stop, steps=steps,
                         prefill_cpu_s=c2 - c1, decode_cpu_s=c_last - c_first, rss_mb=rss_mb(), variant=variant)

    def abort(self) -> None:
        """Cut the running generation short (safe from another thread: a flag read between tokens)."""
        self._abort = True

    def close(self) -> None:
        self._gen = None
        self.tok = None
        self.model = None


def _context_length(model_dir: Path) -> int:
    try:
        cfg = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
        return int(cfg["model"]["context_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 4096


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# ---------------------------------------------------------------------- child process
def _child_main(conn: Connection, cfg: EngineConfig, warmup: bool) -> None:
    """Child process: load once, then answer requests until told to stop (None) or the pipe closes."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    engine = LlmEngine(cfg)
    try:
        info = engine.load(warmup=warmup)
        conn.send(("ok", asdict(info)))
    except Exception as e:  # reported to the parent, which falls back to rules
        conn.send(("error", str(e)))
        return
    while True:
        try:
            req = conn.recv()
        except (EOFError, OSError):
            return
        if req is None:
            return
        op, args = req
        try:
            if op == "generate":
                prompts = [Prompt(**p) for p in args["prompts"]]
                every = args.get("text_every_s")
                # Partial text goes up the same pipe before the answer: one small send per interval.
                on_text = (lambda d, n: conn.send(("partial", (d, n)))) if every is not None else None
                r = engine.generate(prompts, args["deadline"], args.get("max_new"), on_text=on_text,
                                    text_every_s=every or 0.0)
                conn.send(("ok", asdict(r)))
            elif op == "count":
                conn.send(("ok", engine.count_tokens(Prompt(**args["prompt"]))))
            elif op == "warm_prefix":
                conn.send(("ok", engine.warm_prefix(Prompt(**args["prompt"]))))
            else:
                conn.send(("error", f"unknown op {op}"))
        except Exception as e:
            conn.send(("error", str(e)))


class EngineProcess:
    """An `LlmEngine` in a spawned child process (same methods); the parent keeps its GIL for detection.

    A request that outlives its deadline by `grace_s` kills the child; the next call starts a new one."""

    def __init__(self, cfg: EngineConfig, grace_s: float = 30.0):
        self.cfg = cfg
        self.grace_s = grace_s
        self.info: LoadInfo | None = None
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._warmup = True
        self._closed = False

    def load(self, warmup: bool = True, timeout: float = 300.0) -> LoadInfo:
        self._warmup = warmup
        ctx = mp.get_context("spawn")  # fork would copy the daemon's threads and locks
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child_main, args=(child, self.cfg, warmup), name="edgeslm-llm", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(timeout):
            self.close()
            raise LlmError(f"model process did not load within {timeout:.0f} s")
        try:
            status, payload = parent.recv()
        except (EOFError, OSError):
            self.close()
            raise LlmError(f"model process died while loading (exit code {proc.exitcode})") from None
        if status != "ok":
            self.close()
            raise LlmError(str(payload))
        self.info = LoadInfo(**payload)
        return self.info

    def _call(self, op: str, args: dict[str, Any], timeout: float, on_text: TextFn | None = None) -> Any:
        if self._closed:
            raise LlmError("model process stopped")
        if self._conn is None or self._proc is None or not self._proc.is_alive():
            self.close()
            self.load(self._warmup)
        assert self._conn is not None
        end = time.monotonic() + max(0.1, timeout)
        try:
            self._conn.send((op, args))
            while True:
                if not self._conn.poll(max(0.0, end - time.monotonic())):
                    self.close()  # stuck past its deadline: the only way to stop native code is to end the process
                    raise LlmError(f"model process did not answer within {timeout:.0f} s; restarted")
                status, payload = self._conn.recv()
                if status != "partial":
                    break
                if on_text is not None:
                    _hand_over(on_text, payload)
        except (EOFError, OSError, BrokenPipeError) as e:
            self.close()
            raise LlmError(f"model process died: {e}") from None
        if status != "ok":
            raise LlmError(str(payload))
        return payload

    def generate(self, prompts: Sequence[Prompt], deadline: float, max_new: int | None = None,
                 on_text: TextFn | None = None, text_every_s: float = 0.0) -> GenResult:
        args = {"prompts": [asdict(p) for p in prompts], "deadline": deadline, "max_new": max_new,
                "text_every_s": text_every_s if on_text is not None else None}
        payload = self._call("generate", args, deadline - time.monotonic() + self.grace_s, on_text)
        return GenResult(**payload)

    def count_tokens(self, prompt: Prompt) -> int:
        return int(self._call("count", {"prompt": asdict(prompt)}, 60.0))

    def warm_prefix(self, prompt: Prompt) -> int:
        return int(self._call("warm_prefix", {"prompt": asdict(prompt)}, 300.0))

    def abort(self) -> None:
        """Stop for good: end the child now (native code cannot be interrupted any other way)."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self, timeout: float = 5.0) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            conn.close()
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)


def _hand_over(on_text: TextFn, payload: Any) -> None:
    """Partial text from the child to the caller's callback; a failing callback must not lose the answer."""
    try:
        delta, n = payload
        on_text(str(delta), int(n))
    except Exception:
        log.exception("advice_partial_callback_failed")


def bare_loop(engine: LlmEngine, ids: list[int], new_tokens: int) -> dict[str, float]:
    """The reference loop of ../shared/tools/phi3-shaped-model/bench.py on an already loaded model: a
    fresh unguided generator, prefill, then exactly `new_tokens` forced greedy tokens. For benchmarks."""
    assert engine.model is not None
    p = og.GeneratorParams(engine.model)
    total = len(ids) + new_tokens
    # min_length == max_length: EOS is suppressed, so exactly new_tokens come out (as bench.py does)
    p.set_search_options(max_length=total, min_length=total, do_sample=False)
    g = og.Generator(engine.model, p)
    t1, c1 = time.perf_counter(), time.process_time()
    g.append_tokens(ids)
    t2, c2 = time.perf_counter(), time.process_time()
    g.generate_next_token()
    t3, c3 = time.perf_counter(), time.process_time()
    n = 1
    while not g.is_done():
        g.generate_next_token()
        n += 1
    t4, c4 = time.perf_counter(), time.process_time()
    return {"prefill_s": t2 - t1, "ttft_s": t3 - t1, "prefill_tok_s": len(ids) / (t2 - t1), "new_tokens": n,
            "decode_tok_s": (n - 1) / (t4 - t3) if n > 1 else 0.0, "total_s": t4 - t1,
            "prefill_cpu_s": c2 - c1, "decode_cpu_s": c4 - c3}
