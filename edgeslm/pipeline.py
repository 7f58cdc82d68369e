"""The inbound path: paho's thread offers raw messages; the detector thread decodes and detects.

The detector thread owns the decoders and all detector state, so the hot path takes no locks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from edgeslm.detect.engine import DetectionEngine
from edgeslm.health import Counters
from edgeslm.ingest.errors import PayloadError
from edgeslm.ingest.registry import Router
from edgeslm.logs import RateLimited
from edgeslm.models import AlarmEvent, Sample
from edgeslm.settings import Settings

log = structlog.get_logger("edgeslm.pipeline")

EventSink = Callable[[AlarmEvent], None]
BATCH = 512  # messages taken per wake-up: amortises the wake-up and counter costs
# Wait this long for more messages when fewer than BATCH are queued: each wake-up of this thread costs Python
# time (and trades the GIL with paho's thread), and at plant rates a wake-up per message was most of the idle
# cost. Steady 200 x 10 signals at 1 Hz, daemon CPU (bench/ingest.py, 2026-11-26): 5 ms 9.8-10.4 %, 20 ms 8.3 %,
# 50 ms 7.3-8.1 %, 100 ms 7.3 %. 50 ms of added latency is nothing next to 1 Hz telemetry and seconds of advice.
COALESCE_S = 0.05


class Pipeline:
    """Bounded inbound queue (drop-oldest, counted) → decode → detect → alarm events to `sink`."""

    def __init__(self, settings: Settings, engine: DetectionEngine, sink: EventSink, counters: Counters) -> None:
        self._engine = engine
        self._sink = sink
        self._counters = counters
        self._router = Router(settings.subscriptions, settings.ingest)
        self._maxlen = settings.ingest.queue_size
        self._max_series = settings.ingest.max_series
        self._queue: deque[tuple[str, bytes, float]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rl = RateLimited(log, settings.logging.rate_limit_s)
        self._last_ts: dict[tuple[str, str], float] = {}
        self._tick_every = 1.0
        self.dropped = 0  # written only by the producer (paho's thread)
        self.processed_samples = 0
        self.alive = threading.Event()
        self._pending_reconfigure: Settings | None = None
        # Detector state is saved from this thread (it owns it) every `save_every` s and at stop, as JSON
        # text pieces (DetectionEngine.state_json) that the saver writes as they come.
        self.state_saver: Callable[[Iterator[str]], None] | None = None
        self.save_every = settings.gateway.state_save_s
        # Commands a decoder asks to send (Sparkplug rebirth requests); None drops them.
        self.command_sink: Callable[[str, bytes], object] | None = None  # its result is not used

    # --- producer side: paho's network thread ------------------------------------------------------
    def offer(self, topic: str, payload: bytes, received: float) -> None:
        q = self._queue
        if len(q) >= self._maxlen:
            q.popleft()  # drop-oldest: under overload the freshest readings matter most
            self.dropped += 1
        q.append((topic, payload, received))
        if not self._wake.is_set():
            self._wake.set()

    def queue_depth(self) -> int:
        return len(self._queue)

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgeslm-detector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def reconfigure(self, settings: Settings) -> None:
        """Applied by the detector thread between batches, so detector state is never shared."""
        self._pending_reconfigure = settings
        self._wake.set()

    # --- the detector thread ------------------------------------------------------------------------
    def _run(self) -> None:
        log.info("detector_thread_started")
        next_tick = time.monotonic() + self._tick_every
        next_save = time.monotonic() + self.save_every
        while not self._stop.is_set():
            self.alive.set()
            self._wake.wait(timeout=max(0.0, next_tick - time.monotonic()))
            if len(self._queue) < BATCH and not self._stop.is_set():
                # Let a few more messages arrive: one wake-up per message would hand the GIL back and
                # forth with paho's thread for every sample; COALESCE_S bounds the added latency.
                time.sleep(COALESCE_S)
            self._wake.clear()
            try:
                if self._pending_reconfigure is not None:
                    self._apply_reconfigure()
                self._drain()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self._tick_every
                    self._emit(self._engine.tick(time.time()))
                if now >= next_save:
                    next_save = now + self.save_every
                    self._save_state()
            except Exception:
                # A bug in one batch must not end detection for the plant: log it and carry on.
                log.exception("detector_batch_failed")
                self._counters.add("detector_errors")
        try:
            self._drain()
        finally:
            self._save_state()
        log.info("detector_thread_stopped")

    def _save_state(self) -> None:
        if self.state_saver is None:
            return
        try:
            self.state_saver(self._engine.state_json())
        except Exception:
            log.exception("detector_state_save_failed")

    def _apply_reconfigure(self) -> None:
        s = self._pending_reconfigure
        self._pending_reconfigure = None
        assert s is not None
        self._engine.reconfigure(s.detect, s.alarm, s.assets)
        self._router = Router(s.subscriptions, s.ingest)
        self._maxlen = s.ingest.queue_size
        self._max_series = s.ingest.max_series

    def _drain(self) -> None:
        q = self._queue
        while q:
            bad: dict[str, int] = {}
            samples: list[Sample] = []
            n = 0
            decode = self._router.decode
            while q and n < BATCH:
                topic, payload, received = q.popleft()
                n += 1
                try:
                    samples.extend(decode(topic, payload, received))
                except PayloadError as e:
                    bad[e.reason] = bad.get(e.reason, 0) + 1
                    self._rl.warning(f"bad_payload:{e.reason}", "bad_payload", reason=e.reason, topic=topic[:200],
                                     detail=e.detail[:200], bytes=len(payload))
            self._process(samples, n, bad)

    def _process(self, samples: list[Sample], messages: int, bad: dict[str, int]) -> None:
        last = self._last_ts
        events: list[AlarmEvent] = []
        accepted = 0
        process = self._engine.process
        for s in samples:
            key = (s.asset, s.signal)
            prev = last.get(key)
            if prev is None and not self._admit(s):
                bad["too_many_series"] = bad.get("too_many_series", 0) + 1
                continue
            if prev is not None and s.ts < prev:
                # Stated rule: each series moves forward in time; late readings are counted, not scored.
                bad["out_of_order"] = bad.get("out_of_order", 0) + 1
                continue
            last[key] = s.ts
            accepted += 1
            evs = process(s)
            if evs:
                events.extend(evs)
        for dec in self._router.decoders:
            if dec.skipped:
                for reason, k in dec.skipped.items():
                    bad[reason] = bad.get(reason, 0) + k
                dec.skipped.clear()
            outgoing = getattr(dec, "outgoing", None)
            if outgoing:
                self._send_commands(outgoing)
        self.processed_samples += accepted
        c = self._counters
        c.add_many({"messages_in": messages, "samples_in": accepted})
        if bad:
            c.add_many(bad, prefix="bad_payload.")
            c.add("bad_payloads", sum(bad.values()))
        self._emit(events)

    def _admit(self, s: Sample) -> bool:
        """A sample of a series not seen since start: known to the engine (restored state), or room for one
        more under ingest.max_series. Memory grows with series, so their number is what is bounded."""
        eng = self._engine
        if eng.knows(s.asset, s.signal) or eng.series_count < self._max_series:
            return True
        self._rl.warning("too_many_series", "series_limit_reached", asset=s.asset[:128], signal=s.signal[:128],
                         limit=self._max_series, hint="raise ingest.max_series if these signals are real")
        return False

    def _send_commands(self, outgoing: list[tuple[str, bytes]]) -> None:
        sink = self.command_sink
        for topic, payload in outgoing:
            if sink is not None:
                try:
                    sink(topic, payload)
                    self._counters.add("commands_sent")
                except Exception:
                    log.exception("command_send_failed", topic=topic)
        outgoing.clear()

    def _emit(self, events: list[AlarmEvent]) -> None:
        for ev in events:
            try:
                self._sink(ev)
            except Exception:
                log.exception("alarm_sink_failed", alert_id=ev.alarm_id)

    def stats(self) -> dict[str, Any]:
        return {"queue_depth": len(self._queue), "dropped_oldest": self.dropped,
                "samples_processed": self.processed_samples}
