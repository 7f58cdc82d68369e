"""The advisor: a small queue of alerts keyed by asset, one generation at a time, a deadline per
request, and rule-based advice whenever the model is missing, fails, or is too slow.

Threads: `submit` runs on the caller's (detector) thread and only touches the queue under a lock;
everything else runs on the "advisor" thread. Generation itself runs in a child process by default
(see llm.py: onnxruntime-genai holds the GIL while computing).

With `on_partial` and `advice.partial_interval_s` > 0 the model's text is handed out while it is
written (`AdvicePartial`, at most once per interval), and every generation ends with one final partial
(whatever ended it) before the advice itself is published.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from edgeslm.advice.evidence import Prompt, build_prompt
from edgeslm.advice.rules import rule_advice
from edgeslm.advice.schema import AdviceRejected, EvidenceCheck, parse_model_output
from edgeslm.models import Advice, AdvicePartial, AdviceStatus, AlarmEvent
from edgeslm.settings import Settings
from edgeslm.settings.advice import AssetContext

log = structlog.get_logger("edgeslm.advice.worker")

PublishFn = Callable[[Advice], None]
StatusFn = Callable[[AlarmEvent, AdviceStatus, "str | None"], None]
PartialFn = Callable[[AdvicePartial], None]


class Engine(Protocol):
    """What the worker needs from llm.LlmEngine / llm.EngineProcess."""

    info: Any

    def generate(self, prompts: list[Prompt], deadline: float, max_new: int | None = None,
                 on_text: Callable[[str, int], None] | None = None, text_every_s: float = 0.0) -> Any: ...
    def warm_prefix(self, prompt: Prompt) -> int: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class _Request:
    event: AlarmEvent
    submitted: float  # time.monotonic()
    deadline: float  # time.monotonic()
    seq: int


class _PartialStream:
    """Turns the engine's text deltas for one request into numbered AdvicePartial messages.

    Runs on the advisor thread; a failing `on_partial` is logged and never disturbs the generation."""

    def __init__(self, emit: PartialFn, req: _Request, model: str | None) -> None:
        self._emit = emit
        self._req = req
        self._model = model
        self._text = ""
        self._tokens = 0
        self.parts = 0
        self.failed = 0

    def _send(self, **kw: Any) -> None:
        self.parts += 1
        ev = self._req.event
        p = AdvicePartial(alert_id=ev.alarm_id, asset=ev.asset, part=self.parts, model=self._model,
                          elapsed_ms=int((time.monotonic() - self._req.submitted) * 1000), **kw)
        try:
            self._emit(p)
        except Exception:
            self.failed += 1
            if self.failed == 1:
                log.exception("advice_partial_failed", alert_id=ev.alarm_id)

    def on_text(self, delta: str, output_tokens: int) -> None:
        self._text += delta
        self._tokens = output_tokens
        text = self._text.lstrip()  # the first piece often starts with a space (the result is stripped too)
        if text:
            self._send(text=text, output_tokens=output_tokens)

    def close(self, text: str | None, output_tokens: int | None, stop: str, accepted: bool) -> None:
        """The final partial: the whole text (the result's, when there is one) and how it ended."""
        self._send(text=self._text.strip() if text is None else text,
                   output_tokens=self._tokens if output_tokens is None else output_tokens,
                   final=True, stop=stop, accepted=accepted)


def prompt_variants(event: AlarmEvent, ctx: AssetContext | None, max_signals: int) -> list[Prompt]:
    """The full prompt, then shorter ones for the engine to fall back to when over max_prompt_tokens."""
    return [build_prompt(event, ctx, max_signals=max_signals, notes_max=300),
            build_prompt(event, ctx, max_signals=min(2, max_signals), notes_max=100),
            build_prompt(event, ctx, max_signals=1, notes_max=0)]


def _known_names(assets: dict[str, AssetContext]) -> set[str]:
    """Assets and signals named in the config: the model may only mention these (or the alert's own)."""
    known = set(assets)
    for ctx in assets.values():
        known.update(ctx.signals)
    return known


class AdviceWorker:
    """Turns alerts into advice on its own thread; see the module docstring."""

    def __init__(self, settings: Settings, publish: PublishFn, on_status: StatusFn,
                 on_partial: PartialFn | None = None):
        self._s = settings.advice
        self._assets = dict(settings.assets)
        self._publish = publish
        self._on_status = on_status
        self._on_partial = on_partial
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting: dict[str, _Request] = {}  # asset → newest waiting request
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._load_error: str | None = None
        self._busy_since: float | None = None
        self._check = EvidenceCheck(_known_names(self._assets))
        self._stats: dict[str, Any] = {
            "submitted": 0, "done": 0, "failed": 0, "skipped": 0, "dropped": 0, "superseded": 0,
            "model": 0, "rules": 0, "deadline_missed": 0, "rejected": 0, "partials": 0,
            "last_latency_ms": None, "last_source": None, "last_reason": None,
            "last_prompt_tokens": None, "last_output_tokens": None, "last_reused_tokens": None,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load the model (if configured) and start the advisor thread. Never raises for a bad model."""
        if self._s.enabled and self._s.model_dir is not None:
            self._load()
        self._thread = threading.Thread(target=self._run, name="advisor", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            from edgeslm.advice import llm  # imported here: rules-only set-ups never load the runtime
        except ImportError as e:  # a broken onnxruntime-genai install must not stop the daemon
            self._load_error = f"onnxruntime-genai unavailable: {e}"
            log.error("advice_model_unavailable", error=self._load_error)
            return
        cfg = llm.EngineConfig(
            model_dir=str(self._s.model_dir), provider=self._s.execution_provider, threads=self._s.threads,
            guided=self._s.guided_json, fast_forward=self._s.fast_forward, prefix_reuse=self._s.prefix_reuse,
            max_new_tokens=self._s.max_new_tokens, max_prompt_tokens=self._s.max_prompt_tokens)
        engine: Any = llm.EngineProcess(cfg) if self._s.isolation == "process" else llm.LlmEngine(cfg)
        try:
            if self._s.isolation == "process":
                engine.load(warmup=self._s.warmup, timeout=self._s.load_timeout_s)
            else:
                engine.load(warmup=self._s.warmup)
            if self._s.prefix_reuse:
                # Prefill the shared system prompt now so the first alert already starts warm.
                asset = next(iter(self._assets), "asset")
                engine.warm_prefix(build_prompt(_probe_event(asset), self._assets.get(asset)))
        except Exception as e:
            self._load_error = str(e)
            log.error("advice_model_unavailable", model_dir=str(self._s.model_dir), error=str(e))
            try:
                engine.close()
            except Exception:
                log.exception("advice_model_close_failed")
            return
        self._engine = engine

    def reconfigure(self, settings: Settings) -> None:
        """SIGHUP: take the live-applicable advice keys and the asset context; the model stays as loaded."""
        from edgeslm.reload import LIVE_ADVICE_KEYS
        with self._lock:
            self._s = self._s.model_copy(update={k: getattr(settings.advice, k) for k in LIVE_ADVICE_KEYS})
            self._assets = dict(settings.assets)
            self._check = EvidenceCheck(_known_names(self._assets))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, cut a running generation short, join the thread; waiting alerts are skipped."""
        self._stop.set()
        with self._cond:
            waiting = list(self._waiting.values())
            self._waiting.clear()
            self._cond.notify_all()
        for r in waiting:
            self._status(r.event, AdviceStatus.SKIPPED, "advisor stopped")
        engine = self._engine
        if engine is not None:
            engine.abort()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("advisor_thread_join_timeout", timeout_s=timeout)
        if engine is not None:
            try:
                engine.close()
            except Exception:
                log.exception("advice_model_close_failed")
        self._engine = None

    # ------------------------------------------------------------------ facts
    @property
    def model_loaded(self) -> bool:
        return self._engine is not None

    @property
    def model_name(self) -> str | None:
        e = self._engine
        return e.info.name if e is not None and e.info is not None else None

    def describe(self) -> str:
        if not self._s.enabled:
            return "advice disabled (advice.enabled = false)"
        if self._engine is not None and self._engine.info is not None:
            i = self._engine.info
            where = "child process" if self._s.isolation == "process" else "in-process"
            return (f"Phi-3 model {i.name} at {self._s.model_dir} ({i.provider}, {i.threads} threads, {where}, "
                    f"load {i.load_s:.1f} s, {i.rss_mb:.0f} MB)")
        if self._s.model_dir is None:
            return ("rule-based advice (no model configured: run 'edgeslm model pull' and set "
                    "advice.model_dir)")
        return f"rule-based advice (model at {self._s.model_dir} unusable: {self._load_error})"

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self._stats)
            out["queued"] = len(self._waiting)
            busy = self._busy_since
        out["busy_s"] = round(time.monotonic() - busy, 1) if busy is not None else None
        out["model_loaded"] = self.model_loaded
        out["model_name"] = self.model_name
        info = self._engine.info if self._engine is not None else None
        out["model_rss_mb"] = round(info.rss_mb) if info is not None else None
        return out

    # ------------------------------------------------------------------ intake (detector thread)
    def submit(self, event: AlarmEvent) -> bool:
        """Queue an alert for advice without blocking; False when it was not queued (status: skipped)."""
        if not self._s.enabled or self._stop.is_set():
            self._count("skipped")
            self._status(event, AdviceStatus.SKIPPED, "advice disabled" if not self._s.enabled else "stopping")
            return False
        now = time.monotonic()
        skipped: list[tuple[AlarmEvent, str]] = []
        accepted = True
        with self._cond:
            self._seq += 1
            self._stats["submitted"] += 1
            req = _Request(event, now, now + self._s.deadline_s, self._seq)
            old = self._waiting.pop(event.asset, None)
            if old is not None:
                if old.event.alarm_id != event.alarm_id:
                    self._stats["superseded"] += 1
                    self._stats["skipped"] += 1
                    skipped.append((old.event, f"superseded by newer alert {event.alarm_id} of {event.asset}"))
                else:
                    # Same alarm, worse now: new evidence, but its clock (latency, deadline) keeps running.
                    req.submitted, req.deadline = old.submitted, old.deadline
            if len(self._waiting) >= self._s.queue_size:
                # Lowest severity goes; among equals the oldest (its evidence is the stalest).
                victim = min([*self._waiting.values(), req], key=lambda r: (r.event.severity.rank, r.seq))
                self._stats["dropped"] += 1
                self._stats["skipped"] += 1
                skipped.append((victim.event, "advice queue full: lowest severity dropped"))
                if victim is req:
                    accepted = False
                else:
                    del self._waiting[victim.event.asset]
            if accepted:
                self._waiting[event.asset] = req
                self._cond.notify()
        if accepted and (old is None or old.event.alarm_id != event.alarm_id):
            self._status(event, AdviceStatus.PENDING, None)
        for ev, why in skipped:
            log.info("advice_skipped", alert_id=ev.alarm_id, asset=ev.asset, reason=why)
            self._status(ev, AdviceStatus.SKIPPED, why)
        return accepted

    # ------------------------------------------------------------------ advisor thread
    def _take(self) -> _Request | None:
        with self._cond:
            while not self._waiting and not self._stop.is_set():
                self._cond.wait(0.5)
            if self._stop.is_set() or not self._waiting:
                return None
            # Most severe first, then first come.
            req = max(self._waiting.values(), key=lambda r: (r.event.severity.rank, -r.seq))
            del self._waiting[req.event.asset]
            self._busy_since = time.monotonic()
            return req

    def _run(self) -> None:
        while not self._stop.is_set():
            req = self._take()
            if req is None:
                continue
            try:
                self._handle(req)
            except Exception as e:  # the thread must survive anything one alert does
                log.exception("advice_failed", alert_id=req.event.alarm_id)
                self._count("failed")
                self._status(req.event, AdviceStatus.FAILED, f"internal error: {e}")
            finally:
                with self._lock:
                    self._busy_since = None

    def _handle(self, req: _Request) -> None:
        ev = req.event
        ctx = self._assets.get(ev.asset)
        advice: Advice | None = None
        reason: str | None = None
        extra: dict[str, Any] = {}
        engine = self._engine
        if engine is None:
            reason = "no model configured" if self._s.model_dir is None else f"model unusable: {self._load_error}"
        elif time.monotonic() >= req.deadline:
            reason = "deadline passed while waiting in the queue"
            self._count("deadline_missed")
        else:
            advice, reason, extra = self._ask_model(engine, req, ctx)
        latency_ms = int((time.monotonic() - req.submitted) * 1000)
        if advice is None:
            advice = rule_advice(ev, ctx, latency_ms=latency_ms, reason=reason)
        else:
            advice = dataclasses.replace(advice, latency_ms=latency_ms)
        if extra:
            advice.extra.update(extra)
        try:
            self._publish(advice)
        except Exception as e:
            log.exception("advice_publish_failed", alert_id=ev.alarm_id)
            self._count("failed")
            self._status(ev, AdviceStatus.FAILED, f"publish failed: {e}")
            return
        with self._lock:
            self._stats["done"] += 1
            self._stats[advice.source] += 1
            self._stats["last_latency_ms"] = latency_ms
            self._stats["last_source"] = advice.source
            self._stats["last_reason"] = advice.reason
        log.info("advice_published", alert_id=ev.alarm_id, asset=ev.asset, source=advice.source,
                 latency_ms=latency_ms, reason=advice.reason, **{k: v for k, v in extra.items() if k != "text"})
        self._status(ev, AdviceStatus.DONE, advice.reason)

    def _ask_model(self, engine: Engine, req: _Request,
                   ctx: AssetContext | None) -> tuple[Advice | None, str | None, dict[str, Any]]:
        ev = req.event
        self._check.learn([ev.asset, *ev.signal_names])
        prompts = prompt_variants(ev, ctx, self._s.max_signals)
        info = getattr(engine, "info", None)
        every = self._s.partial_interval_s
        stream = _PartialStream(self._on_partial, req, info.name if info is not None else None) \
            if self._on_partial is not None and every > 0 else None
        try:
            try:
                r = engine.generate(prompts, deadline=req.deadline,
                                    on_text=stream.on_text if stream is not None else None, text_every_s=every)
            except Exception as e:
                if stream is not None:
                    stream.close(None, None, "stopped" if self._stop.is_set() else "error", False)
                return None, f"model failed: {e}", {}
            advice, reason, extra = self._judge(r, ev, info)
            if stream is not None:
                # Before the advice is published: an HMI clears its draft ("typing…") on this, and learns
                # at once whether the draft became the advice or rules advice follows.
                stop = "stopped" if self._stop.is_set() and r.stop == "deadline" else r.stop
                stream.close(r.text, r.output_tokens, stop, advice is not None)
            return advice, reason, extra
        finally:
            if stream is not None:
                with self._lock:
                    self._stats["partials"] += stream.parts

    def _judge(self, r: Any, ev: AlarmEvent, info: Any) -> tuple[Advice | None, str | None, dict[str, Any]]:
        """The engine's result → model advice, or None and the reason for rules."""
        extra = {"prompt_tokens": r.prompt_tokens, "reused_tokens": r.reused_tokens,
                 "output_tokens": r.output_tokens, "ttft_ms": int(r.ttft_s * 1000), "stop": r.stop,
                 "steps": r.steps, "decode_tok_s": round(r.decode_tok_s, 2), "rss_mb": round(r.rss_mb)}
        with self._lock:
            self._stats["last_prompt_tokens"] = r.prompt_tokens
            self._stats["last_output_tokens"] = r.output_tokens
            self._stats["last_reused_tokens"] = r.reused_tokens
        if r.stop == "deadline":
            self._count("deadline_missed")
            return None, f"deadline: model stopped after {r.output_tokens} tokens", extra
        if r.stop in ("max_new", "max_length"):
            self._count("rejected")
            return None, f"model output cut at {r.output_tokens} tokens (max_new_tokens)", extra
        try:
            out = parse_model_output(r.text) if self._s.guided_json else _parse_loose(r.text)
            self._check.check(out, ev)
        except AdviceRejected as e:
            self._count("rejected")
            log.info("advice_model_output_rejected", alert_id=ev.alarm_id, reason=str(e))
            return None, f"model output rejected: {e}", extra
        advice = Advice(
            alert_id=ev.alarm_id, asset=ev.asset, source="model", summary=out.summary.strip(),
            probable_causes=tuple(c.strip() for c in out.probable_causes),
            recommended_actions=tuple(a.strip() for a in out.recommended_actions),
            urgency=out.urgency, confidence=float(out.confidence), latency_ms=0,
            model=info.name if info is not None else None)
        return advice, None, extra

    # ------------------------------------------------------------------ helpers
    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _status(self, event: AlarmEvent, status: AdviceStatus, reason: str | None) -> None:
        try:
            self._on_status(event, status, reason)
        except Exception:
            log.exception("advice_status_callback_failed", alert_id=event.alarm_id, status=status.value)


def _parse_loose(text: str) -> Any:
    """Unguided output: take the outermost {...} and validate it like guided output."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise AdviceRejected("no JSON object in the output")
    return parse_model_output(text[start:end + 1])


def _probe_event(asset: str) -> AlarmEvent:
    """A stand-in alert used only to render the system prompt of `asset` for prefix warm-up."""
    from edgeslm.models import AlarmState, Severity

    return AlarmEvent(alarm_id="warmup", asset=asset, state=AlarmState.RAISED, severity=Severity.LOW, ts=0.0,
                      started_ts=0.0, detectors=(), signals=(), score=0.0)
