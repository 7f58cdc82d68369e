"""Opt-in Sparkplug B output: this gateway as an edge node, each asset as a device with alert/advice metrics.

Best-effort live state in Sparkplug's own model: births carry every current value, data messages carry
changes (QoS 0), a host that missed something asks for a rebirth (NCMD). Nothing is queued on disk:
the JSON alert/advice topics remain the store-and-forward path.

`EdgeNode` is pure (builds messages, counts seq); `SparkplugPublisher` owns a separate paho session so
its NDEATH will (with bdSeq) does not replace the daemon's status will.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.ingest import sparkplug_b_pb2 as pb
from edgeslm.ingest.sparkplug import BDSEQ_METRIC, BOOLEAN, DOUBLE, INT64, NAMESPACE, REBIRTH_METRIC, STRING
from edgeslm.mqtt.client import configure_security
from edgeslm.mqtt.topics import safe_level
from edgeslm.settings.mqtt import MqttSettings
from edgeslm.settings.sparkplug import SparkplugOutSettings

log = structlog.get_logger("edgeslm.sparkplug_out")

# Device metrics, in alias order. Strings for identifiers and text, Double for numbers.
ALERT_METRICS: tuple[tuple[str, str, int], ...] = (
    ("alert/id", "alert_id", STRING), ("alert/state", "state", STRING), ("alert/severity", "severity", STRING),
    ("alert/score", "score", DOUBLE), ("alert/signals", "signals", STRING),
    ("alert/detectors", "detectors", STRING), ("alert/advice_status", "advice_status", STRING))
ADVICE_METRICS: tuple[tuple[str, str, int], ...] = (
    ("advice/alert_id", "alert_id", STRING), ("advice/summary", "summary", STRING),
    ("advice/urgency", "urgency", STRING), ("advice/source", "source", STRING),
    ("advice/confidence", "confidence", DOUBLE))
DEVICE_METRICS = ALERT_METRICS + ADVICE_METRICS
MAX_STRING = 4096  # characters per String metric: SCADA tag stores are not document stores
MAX_DEVICES = 10_000
MAX_COMMAND_BYTES = 65536

Value = str | float | None


@dataclass
class _Device:
    first_alias: int
    values: dict[str, Value] = field(default_factory=dict)
    born: bool = False  # DBIRTH sent in the current node session


def _now_ms() -> int:
    return int(time.time() * 1000)


def _metric(p: Any, name: str | None, alias: int | None, datatype: int | None, value: Value | bool,
            ts_ms: int) -> None:
    m = p.metrics.add()
    if name is not None:
        m.name = name
    if alias is not None:
        m.alias = alias
    if datatype is not None:
        m.datatype = datatype
    m.timestamp = ts_ms
    if value is None:
        m.is_null = True
    elif isinstance(value, bool):
        m.boolean_value = value
    elif isinstance(value, int) and datatype == INT64:
        m.long_value = value
    elif isinstance(value, float):
        m.double_value = value
    else:
        m.string_value = str(value)


def _convert(raw: object, datatype: int) -> Value:
    """A payload field as a metric value: lists become comma-separated strings, non-finite numbers null."""
    if raw is None:
        return None
    if datatype == DOUBLE:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        f = float(raw)
        return f if math.isfinite(f) else None
    if isinstance(raw, list | tuple):
        raw = ",".join(str(x) for x in raw)
    return str(raw)[:MAX_STRING]


def _ts_ms(raw: object) -> int:
    """Epoch ms from an alert's ISO 8601 `ts` or an advice's epoch-seconds `ts`; now if neither."""
    try:
        if isinstance(raw, str):
            return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) and raw > 0:
            return int(raw * 1000)
    except (ValueError, OverflowError):
        pass
    return _now_ms()


class EdgeNode:
    """Sparkplug edge-node state and message building; no I/O. Callers serialise access (one lock)."""

    def __init__(self, group_id: str, edge_node_id: str, bd_seq: int = 0) -> None:
        self.group_id = group_id
        self.edge_node_id = edge_node_id
        self.bd_seq = bd_seq % 256
        self._seq = 0
        self._devices: dict[str, _Device] = {}
        self._next_alias = 1

    @property
    def device_count(self) -> int:
        return len(self._devices)

    def topic(self, kind: str, device: str | None = None) -> str:
        base = f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}"
        return f"{base}/{device}" if device is not None else base

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def new_session(self) -> None:
        """A new MQTT session will follow: the next will and NBIRTH carry the next bdSeq."""
        self.bd_seq = (self.bd_seq + 1) % 256

    def ndeath(self) -> tuple[str, bytes]:
        p = pb.Payload(timestamp=_now_ms())
        _metric(p, BDSEQ_METRIC, None, INT64, self.bd_seq, p.timestamp)
        return self.topic("NDEATH"), p.SerializeToString()

    def births(self) -> list[tuple[str, bytes]]:
        """NBIRTH (seq restarts at 0) then a DBIRTH for every known device, with current values."""
        self._seq = 0
        now = _now_ms()
        p = pb.Payload(timestamp=now, seq=self._next_seq())
        _metric(p, BDSEQ_METRIC, None, INT64, self.bd_seq, now)
        _metric(p, REBIRTH_METRIC, None, BOOLEAN, False, now)
        out = [(self.topic("NBIRTH"), p.SerializeToString())]
        for device_id, dev in self._devices.items():
            out.append(self._dbirth(device_id, dev))
        return out

    def _dbirth(self, device_id: str, dev: _Device) -> tuple[str, bytes]:
        now = _now_ms()
        p = pb.Payload(timestamp=now, seq=self._next_seq())
        for i, (name, _, datatype) in enumerate(DEVICE_METRICS):
            _metric(p, name, dev.first_alias + i, datatype, dev.values.get(name), now)
        dev.born = True
        return self.topic("DBIRTH", device_id), p.SerializeToString()

    def forget_births(self) -> None:
        """The session ended: every device needs a new DBIRTH after the next NBIRTH."""
        for dev in self._devices.values():
            dev.born = False

    def device_id(self, asset: str) -> str:
        return safe_level(asset)[:128]

    def update(self, asset: str, fields: Mapping[str, object], metrics: tuple[tuple[str, str, int], ...],
               connected: bool) -> list[tuple[str, bytes]]:
        """Record new values for an asset; return the messages that tell a host (DBIRTH or DDATA)."""
        device_id = self.device_id(asset)
        dev = self._devices.get(device_id)
        if dev is None:
            if len(self._devices) >= MAX_DEVICES:
                return []
            dev = self._devices[device_id] = _Device(self._next_alias)
            self._next_alias += len(DEVICE_METRICS)
        ts = _ts_ms(fields.get("ts"))
        changed = []
        for name, key, datatype in metrics:
            value = _convert(fields.get(key), datatype)
            if dev.values.get(name) != value or name not in dev.values:
                dev.values[name] = value
                changed.append((name, datatype, value))
        if not connected:
            return []  # the next NBIRTH/DBIRTH carries these values
        if not dev.born:
            return [self._dbirth(device_id, dev)]
        if not changed:
            return []
        p = pb.Payload(timestamp=_now_ms(), seq=self._next_seq())
        index = {n: i for i, (n, _, _) in enumerate(DEVICE_METRICS)}
        for name, _datatype, value in changed:
            # Aliases only: the DBIRTH bound them to names (Sparkplug's bandwidth saving).
            _metric(p, None, dev.first_alias + index[name], None, value, ts)
        return [(self.topic("DDATA", device_id), p.SerializeToString())]


def is_rebirth_command(raw: bytes | bytearray) -> bool:
    if len(raw) > MAX_COMMAND_BYTES:
        return False
    try:
        p = pb.Payload.FromString(raw)
    except Exception:  # untrusted bytes: DecodeError or UnicodeDecodeError depending on the backend
        return False
    return any(m.name == REBIRTH_METRIC and m.WhichOneof("value") == "boolean_value" and m.boolean_value
               for m in p.metrics)


class SparkplugPublisher:
    """The Sparkplug session: NBIRTH/DBIRTH on connect and on NCMD rebirth, DDATA per alert/advice, NDEATH."""

    def __init__(self, settings_out: SparkplugOutSettings, mqtt_settings: MqttSettings,
                 password: str | None) -> None:
        self._s = settings_out
        self._m = mqtt_settings
        # bdSeq starts at a random value: after a restart, a late will of the previous session must not
        # carry the same bdSeq as our new NBIRTH, or the host would mark the new session dead.
        self.node = EdgeNode(settings_out.group_id, settings_out.edge_node_id, random.randrange(256))
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self._last_rebirth = 0.0
        self._refusal_logged = False
        self.published = 0
        self._client = self._build(password)

    @property
    def client_id(self) -> str:
        return self._s.client_id or f"edgeslm-spb-{self._s.group_id}-{self._s.edge_node_id}"[:128]

    def _build(self, password: str | None) -> paho.Client:
        m = self._m
        v5 = m.protocol == "5"
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": True}
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=paho.MQTTv5 if v5 else paho.MQTTv311, **kwargs)
        c.suppress_exceptions = True
        c.reconnect_delay_set(int(max(1, m.reconnect_min_s)), int(max(1, m.reconnect_max_s)))
        configure_security(c, m, password)
        topic, payload = self.node.ndeath()
        c.will_set(topic, payload, qos=1, retain=False)  # Sparkplug: NDEATH will at QoS 1, not retained
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        return c

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        # Sparkplug 3.0 requires a clean session: stale NCMDs queued by the broker must not replay.
        self._client.connect_async(self._m.host, self._m.port, keepalive=self._m.keepalive_s, clean_start=True)
        self._client.loop_start()
        log.info("sparkplug_connecting", host=self._m.host, port=self._m.port, group=self._s.group_id,
                 edge_node=self._s.edge_node_id, bd_seq=self.node.bd_seq)

    def stop(self) -> None:
        """NDEATH explicitly (a clean DISCONNECT discards the will), then disconnect."""
        try:
            if self.connected.is_set():
                with self._lock:
                    topic, payload = self.node.ndeath()
                    info = self._client.publish(topic, payload, qos=1)
                info.wait_for_publish(timeout=self._s.connect_timeout_s)
        except (RuntimeError, ValueError) as e:
            log.warning("sparkplug_ndeath_failed", error=str(e))
        log.info("sparkplug_stopping", bd_seq=self.node.bd_seq)
        self.connected.clear()
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # --- the daemon's side (detector and advisor threads) -------------------------------------------
    def publish_alert(self, alert_payload: Mapping[str, Any]) -> None:
        self._update(alert_payload, ALERT_METRICS)

    def publish_advice(self, advice_payload: Mapping[str, Any]) -> None:
        self._update(advice_payload, ADVICE_METRICS)

    def _update(self, body: Mapping[str, Any], metrics: tuple[tuple[str, str, int], ...]) -> None:
        try:
            asset = body.get("asset")
            if not isinstance(asset, str) or not asset:
                return
            with self._lock:  # seq order on the wire must match the order we number messages
                for topic, payload in self.node.update(asset, body, metrics, self.connected.is_set()):
                    self._send(topic, payload)
        except Exception:
            # Best-effort output: it must never break alert delivery on the JSON path.
            log.exception("sparkplug_publish_failed", asset=str(body.get("asset"))[:100])

    def _send(self, topic: str, payload: bytes) -> None:
        # QoS 0, not retained: Sparkplug 3.0 for NBIRTH/DBIRTH/NDATA/DDATA.
        self._client.publish(topic, payload, qos=0, retain=False)
        self.published += 1

    # --- paho callbacks (network thread) ------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            if rc.is_failure:
                if not self._refusal_logged:
                    log.error("sparkplug_connect_refused", reason=str(rc), host=self._m.host)
                    self._refusal_logged = True
                return
            self._refusal_logged = False
            # Subscribe before the birth, so a rebirth request sent in reply to it is not missed.
            client.subscribe(self.node.topic("NCMD"), qos=1)
            with self._lock:
                for topic, payload in self.node.births():
                    self._send(topic, payload)
                self.connected.set()
            log.info("sparkplug_connected", bd_seq=self.node.bd_seq, devices=self.node.device_count)
        except Exception:
            log.exception("sparkplug_on_connect_error")

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            was = self.connected.is_set()
            self.connected.clear()
            with self._lock:
                self.node.forget_births()
                self.node.new_session()
                topic, payload = self.node.ndeath()
            # paho sends the will stored now with its next CONNECT: the next NBIRTH's bdSeq matches it.
            client.will_set(topic, payload, qos=1, retain=False)
            if was:
                log.warning("sparkplug_disconnected", reason=str(rc))
        except Exception:
            log.exception("sparkplug_on_disconnect_error")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            if not is_rebirth_command(msg.payload):
                return
            now = time.monotonic()
            if now - self._last_rebirth < self._s.rebirth_min_interval_s:
                return
            self._last_rebirth = now
            with self._lock:
                for topic, payload in self.node.births():
                    self._send(topic, payload)
            log.info("sparkplug_rebirth", bd_seq=self.node.bd_seq)
        except Exception:
            log.exception("sparkplug_on_message_error")
