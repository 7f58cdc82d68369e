"""Builds and wires the parts; ordered start and stop. The only module that knows them all."""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from edgeslm import __version__, accel, logs
from edgeslm.advice.schema import advice_payload, partial_payload
from edgeslm.advice.worker import AdviceWorker
from edgeslm.alerts import alert_payload, iso
from edgeslm.detect.engine import DetectionEngine
from edgeslm.health import Counters, status_payload
from edgeslm.ids import uuid7
from edgeslm.metrics import start_metrics_server
from edgeslm.models import Advice, AdvicePartial, AdviceStatus, AlarmEvent, AlarmState
from edgeslm.mqtt import topics
from edgeslm.mqtt.client import MqttLink
from edgeslm.outbox import Forwarder, MessageClass, Outbox, OutboxError
from edgeslm.pipeline import Pipeline
from edgeslm.reload import changed_keys
from edgeslm.sdnotify import Notifier
from edgeslm.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # protobuf costs ~4 MB of RSS: imported only when Sparkplug output is on
    from edgeslm.sparkplug_out import SparkplugPublisher

log = structlog.get_logger("edgeslm.app")

STATE_FILE = "detector_state.json"


class StartupError(RuntimeError):
    """The daemon cannot start for a reason the operator must fix (not a config-file error)."""


class App:
    def __init__(self, settings: Settings, config_path: Path | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.counters = Counters()
        self.started = time.time()
        self.stop_event = threading.Event()
        self._reload_requested = threading.Event()
        # alert_id → (latest event of the episode, its advice status); bounded, oldest forgotten first
        self._episodes: OrderedDict[str, tuple[AlarmEvent, AdviceStatus]] = OrderedDict()
        self._lock = threading.Lock()
        self.notifier = Notifier()
        self.outbox: Outbox | None = None
        self.link: MqttLink | None = None  # telemetry in (persistent session, subscriptions)
        self.out_link: MqttLink | None = None  # everything we publish, birth and will
        self.forwarder: Forwarder | None = None
        self.advisor: AdviceWorker | None = None
        self.pipeline: Pipeline | None = None
        self.engine: DetectionEngine | None = None
        self.sparkplug: SparkplugPublisher | None = None
        self._metrics: Any = None

    # --- start --------------------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        state_dir = s.gateway.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=state_dir, prefix=".probe-")  # noqa: SIM115
            probe.close()
        except OSError as e:
            raise StartupError(f"gateway.state_dir {state_dir} is not writable: {e.strerror or e}") from None
        try:
            self.outbox = Outbox(s.outbox_path, s.outbox)
        except OutboxError as e:
            raise StartupError(f"outbox {s.outbox_path}: {e}") from None
        self.engine = DetectionEngine(s.detect, s.alarm, s.assets)
        self._load_detector_state()
        self.pipeline = Pipeline(s, self.engine, self._on_alarm, self.counters)
        self.pipeline.state_saver = self._save_detector_state
        # Two sessions: a telemetry flood queued by the broker for us must not delay our PUBACKs and status.
        self.link = MqttLink(s, on_message=self.pipeline.offer, role="in")
        self.out_link = MqttLink(s, client_id=f"{s.client_id}-out", role="out")
        link = self.out_link
        # Decoder commands (Sparkplug rebirth requests) go out directly: a stale one is useless after an outage.
        self.pipeline.command_sink = lambda topic, payload: link.publish(
            topic, payload, qos=0, content_type="application/x-protobuf", binary=True)
        self.forwarder = Forwarder(self.outbox, self.out_link, s.outbox)
        self.advisor = AdviceWorker(s, publish=self._on_advice, on_status=self._on_advice_status,
                                    on_partial=self._on_advice_partial)
        if s.sparkplug_out.enabled:
            from edgeslm.sparkplug_out import SparkplugPublisher

            self.sparkplug = SparkplugPublisher(s.sparkplug_out, s.mqtt, s.mqtt_password())
            self.sparkplug.start()
        if s.health.metrics_port:
            try:
                self._metrics = start_metrics_server(s.health.metrics_port, s.health.metrics_bind, self.status)
            except (RuntimeError, OSError) as e:
                raise StartupError(f"metrics endpoint on {s.health.metrics_bind}:{s.health.metrics_port}: {e}") \
                    from None
        self.forwarder.start()
        self.out_link.start()
        self.link.start()
        self.advisor.start()
        self.pipeline.start()
        if self.outbox.recovered_from is not None:
            self._system_alert("outbox_recovered", f"outbox database was unreadable and was moved to "
                               f"{self.outbox.recovered_from}; a fresh one was started")
        log.info("edgeslm_started", version=__version__, gateway=s.gateway.name, site=s.gateway.site,
                 advisor=self.advisor.describe(), outbox=str(s.outbox_path),
                 detectors="compiled (mypyc)" if accel.compiled_in_use() else "pure Python")
        self.notifier.notify("READY=1", f"STATUS=running; advisor: {self.advisor.describe()}")

    # --- alarm → alert → advice ---------------------------------------------------------------------
    def _on_alarm(self, ev: AlarmEvent) -> None:
        """Detector thread: publish the alert at once; ask for advice on new or worsening episodes."""
        s = self.settings
        assert self.outbox is not None and self.advisor is not None
        with self._lock:
            known = self._episodes.get(ev.alarm_id)
        status = known[1] if known else None
        wants_advice = ev.state is not AlarmState.CLEARED and s.advice.enabled and (
            ev.state is AlarmState.RAISED or status not in (AdviceStatus.PENDING,))
        if wants_advice:
            status = AdviceStatus.PENDING
        elif status is None:
            status = AdviceStatus.SKIPPED
        self._remember(ev, status)
        self._put_alert(ev, status, None)
        self.counters.add(f"alerts_{ev.state}")
        log.info("alert", alert_id=ev.alarm_id, asset=ev.asset, state=str(ev.state), severity=str(ev.severity),
                 signals=list(ev.signal_names), detectors=list(ev.detectors))
        if wants_advice and not self.advisor.submit(ev):
            self._on_advice_status(ev, AdviceStatus.SKIPPED, "advice queue full")

    def _put_alert(self, ev: AlarmEvent, status: AdviceStatus, reason: str | None) -> None:
        s = self.settings
        assert self.outbox is not None
        payload = alert_payload(ev, site=s.gateway.site, gateway=s.gateway.name, advice_status=status,
                                advice_reason=reason)
        self._put(topics.alerts(s.gateway.topic_prefix, s.gateway.site, ev.asset), payload, MessageClass.ALERT)
        if self.sparkplug is not None:
            self.sparkplug.publish_alert(payload)

    def _on_advice(self, advice: Advice) -> None:
        """Advisor thread: the advice, under the alert's id."""
        s = self.settings
        payload = advice_payload(advice)
        self._put(topics.advice(s.gateway.topic_prefix, s.gateway.site, advice.asset), payload, MessageClass.ADVICE)
        if self.sparkplug is not None:
            self.sparkplug.publish_advice(payload)
        self.counters.add(f"advice_{advice.source}")
        log.info("advice", alert_id=advice.alert_id, asset=advice.asset, source=advice.source,
                 urgency=advice.urgency, latency_ms=advice.latency_ms, reason=advice.reason)

    def _on_advice_partial(self, p: AdvicePartial) -> None:
        """Advisor thread: the model's text so far, straight to the broker at QoS 0, never through the outbox.

        A partial is live state, superseded by the next one within seconds: stored, it would cost two
        fsync'd commits per second of generation (flash wear), wait behind any backlog in the outbox's
        FIFO, and after an outage or a crash be replayed as stale "typing…" text with no final to end it.
        So it is sent only while the link is up and not stalled, else dropped and counted
        (docs/advice.md, "Streaming")."""
        s = self.settings
        link, fwd = self.out_link, self.forwarder
        if link is None or not link.connected.is_set() or (fwd is not None and fwd.stalled):
            self.counters.add("advice_partials_dropped")
            return
        body = json.dumps(partial_payload(p), allow_nan=False, separators=(",", ":"), ensure_ascii=False)
        expiry = max(10, math.ceil(3 * s.advice.partial_interval_s))  # for a broker that queues QoS 0
        res = link.publish(topics.advice_partial(s.gateway.topic_prefix, s.gateway.site, p.asset),
                           body.encode("utf-8", "replace"), qos=0, expiry_s=expiry)
        self.counters.add("advice_partials_sent" if res.queued else "advice_partials_dropped")

    def _on_advice_status(self, ev: AlarmEvent, status: AdviceStatus, reason: str | None) -> None:
        """The alert is re-sent with its new advice_status so an HMI can show 'advice ready/failed'.

        The re-sent message is the episode's LATEST state (it may have cleared while the model wrote):
        consumers keep the newest message per alert_id, so it must never move an episode backwards.
        """
        if status is AdviceStatus.PENDING:
            return
        with self._lock:
            known = self._episodes.get(ev.alarm_id)
        latest = known[0] if known else ev
        self._remember(latest, status)
        self._put_alert(latest, status, reason)

    def _remember(self, ev: AlarmEvent, status: AdviceStatus) -> None:
        with self._lock:
            self._episodes[ev.alarm_id] = (ev, status)
            self._episodes.move_to_end(ev.alarm_id)
            while len(self._episodes) > 10_000:
                self._episodes.popitem(last=False)

    def _put(self, topic: str, payload: dict[str, Any], cls: MessageClass, retain: bool = False) -> None:
        assert self.outbox is not None
        try:
            self.outbox.put(topic, payload, cls, retain=retain)
        except Exception as e:
            # Counted and logged; the outbox has already accounted the drop (disk full, closed).
            self.counters.add("outbox_put_failed")
            log.error("outbox_put_failed", topic=topic, error=str(e))

    def _system_alert(self, kind: str, message: str) -> None:
        s = self.settings
        payload = {"alert_id": uuid7(), "ts": iso(time.time()), "site": s.gateway.site, "gateway": s.gateway.name,
                   "asset": s.gateway.name, "state": "raised", "severity": "high", "signals": [],
                   "detectors": [kind], "message": message, "advice_status": "skipped"}
        self._put(topics.alerts(s.gateway.topic_prefix, s.gateway.site, s.gateway.name), payload,
                  MessageClass.ALERT)
        log.error("system_alert", kind=kind, message=message)

    # --- status, state, reload ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        s = self.settings
        assert self.outbox and self.pipeline and self.advisor and self.engine
        return status_payload(
            gateway=s.gateway.name, site=s.gateway.site, started=self.started,
            counters=self.counters.snapshot(),
            sections={"ingest": self.pipeline.stats(), "detect": self.engine.stats(),
                      "advice": {"model_loaded": self.advisor.model_loaded, "model": self.advisor.model_name,
                                 **self.advisor.stats()},
                      "outbox": self.outbox.stats(),
                      "mqtt": {"connected": bool(self.link and self.link.connected.is_set()
                                                 and self.out_link and self.out_link.connected.is_set())}})

    def publish_status(self) -> None:
        s = self.settings
        self._put(topics.status(s.gateway.topic_prefix, s.gateway.name), self.status(), MessageClass.STATUS,
                  retain=True)

    def _state_path(self) -> Path:
        return self.settings.gateway.state_dir / STATE_FILE

    def _load_detector_state(self) -> None:
        assert self.engine is not None
        path = self._state_path()
        if not path.exists():
            return
        try:
            self.engine.load_state(json.loads(path.read_text()))
            log.info("detector_state_restored", path=str(path))
        except Exception as e:
            # Stale or damaged state only costs a warm-up; keep the file for a post-mortem.
            aside = path.with_suffix(f".bad-{int(time.time())}")
            path.rename(aside)
            log.warning("detector_state_unreadable", path=str(path), moved_to=str(aside), error=str(e))

    def _save_detector_state(self, pieces: Iterator[str]) -> None:
        path = self._state_path()
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for piece in pieces:
                fh.write(piece)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: a crash leaves the old or the new state, never half of one

    def request_reload(self) -> None:
        self._reload_requested.set()

    def reload(self) -> bool:
        """Re-read the config file; apply live-safe changes; keep the old config on any error."""
        if self.config_path is None:
            log.warning("reload_ignored", reason="no config file")
            return False
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            new = load_settings(self.config_path)
        except ConfigError as e:
            log.error("reload_rejected", config=str(self.config_path), errors=e.problems,
                      action="keeping the running configuration")
            self.notifier.notify("READY=1", "STATUS=reload rejected: config invalid, old config kept")
            return False
        changes = changed_keys(self.settings, new)
        for key, live in changes:
            log.info("config_changed", key=key, applied=live, note=None if live else "needs a restart")
        if any(live for _, live in changes):
            assert self.pipeline and self.advisor and self.link
            self.pipeline.reconfigure(new)
            self.advisor.reconfigure(new)
            if new.subscriptions != self.settings.subscriptions:
                self.link.update_subscriptions(new.subscriptions)
            logs.configure(new.logging.level, new.logging.format)
            self.settings = new if all(live for _, live in changes) else _merge_live(self.settings, new)
        log.info("reload_done", changed=len(changes), applied=sum(1 for _, live in changes if live))
        self.notifier.notify("READY=1", "STATUS=running (config reloaded)")
        return True

    # --- run and stop -------------------------------------------------------------------------------
    def run_forever(self) -> None:
        s = self.settings
        wd = self.notifier.watchdog_interval()
        next_status = time.monotonic() + 2.0  # first status soon after start
        next_wd = time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
                s = self.settings
            if now >= next_status:
                self.publish_status()
                next_status = now + s.health.status_interval_s
            if wd is not None and now >= next_wd:
                if self.healthy():
                    self.notifier.notify("WATCHDOG=1")
                else:  # no ping: systemd restarts us if the detector or forwarder thread died
                    log.error("watchdog_withheld", detector=self.pipeline and self.pipeline.is_alive(),
                              forwarder=self.forwarder and self.forwarder.is_alive())
                next_wd = now + wd
            self.stop_event.wait(timeout=min(1.0, wd or 1.0))

    def healthy(self) -> bool:
        return bool(self.pipeline and self.pipeline.is_alive() and self.forwarder and self.forwarder.is_alive())

    def stop(self) -> None:
        """Ordered: stop detecting, stop advising, flush what we can, say offline, close the store."""
        self.notifier.notify("STOPPING=1")
        log.info("edgeslm_stopping")
        if self.pipeline:
            self.pipeline.stop()
        if self.advisor:
            self.advisor.stop(timeout=5.0)
        if self.outbox and self.pipeline:
            self.publish_status()
        if self.forwarder:
            self.forwarder.stop(timeout=3.0)
        if self.link:
            self.link.stop()
        if self.out_link:
            self.out_link.stop()  # last: says "offline"
        if self.sparkplug:
            self.sparkplug.stop()
        if self.outbox:
            self.outbox.close()
        if self._metrics is not None:
            server, _thread = self._metrics
            server.shutdown()
        log.info("edgeslm_stopped")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())


def _merge_live(old: Settings, new: Settings) -> Settings:
    """Take the live-applicable sections from `new`, keep the rest as running."""
    from edgeslm.reload import LIVE, LIVE_ADVICE_KEYS
    update: dict[str, Any] = {k: getattr(new, k) for k in LIVE}
    update["advice"] = old.advice.model_copy(update={k: getattr(new.advice, k) for k in LIVE_ADVICE_KEYS})
    return old.model_copy(update=update)
