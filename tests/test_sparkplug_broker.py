"""Sparkplug B against a real mosquitto: a Tahu-style edge node in, our edge node out."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.advice.schema import advice_payload
from edgeslm.alerts import alert_payload
from edgeslm.ingest import sparkplug_b_pb2 as pb
from edgeslm.ingest.registry import Router
from edgeslm.ingest.sparkplug import REBIRTH_METRIC, SparkplugDecoder, rebirth_command
from edgeslm.models import Advice, AdviceStatus, AlarmEvent, AlarmState, Sample, Severity
from edgeslm.mqtt.client import MqttLink
from edgeslm.settings import IngestSettings, SparkplugMapping, load_settings
from edgeslm.settings.sparkplug import SparkplugOutSettings
from edgeslm.sparkplug_out import SparkplugPublisher
from tests.util import wait_for

pytestmark = [pytest.mark.broker]
TIMEOUT = 10.0




class Client:
    """A plain paho client that records what it receives on its filters."""

    def __init__(self, broker: Any, *filters: str, will: tuple[str, bytes] | None = None) -> None:
        self.msgs: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if will:
            self.c.will_set(will[0], will[1], qos=1)
        self.c.on_message = self._on
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        if filters:
            self.c.subscribe([(f, 1) for f in filters])
            assert subscribed.wait(TIMEOUT)

    def _on(self, c: Any, u: Any, m: paho.MQTTMessage) -> None:
        with self.lock:
            self.msgs.append((m.topic, m.payload))

    def of(self, kind: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(t, pb.Payload.FromString(p)) for t, p in self.msgs if f"/{kind}/" in t]

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=0).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def payload(seq: int | None, *metrics: dict[str, Any]) -> bytes:
    p = pb.Payload(timestamp=int(time.time() * 1000))
    if seq is not None:
        p.seq = seq
    for m in metrics:
        p.metrics.add(**m)
    return p.SerializeToString()


def test_tahu_style_edge_node_gives_samples_and_a_gap_makes_it_receive_a_rebirth_ncmd(
        broker: Any, tmp_path: Path) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        None, gateway={"name": "gw-spb", "state_dir": str(tmp_path)},
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"host-{group}", "clean_start": True},
        subscriptions=[{"topic": f"spBv1.0/{group}/#", "codec": "sparkplug"}])
    inbox: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
    link = MqttLink(settings, on_message=lambda t, p, r: inbox.put((t, p, r)))
    router = Router(settings.subscriptions, settings.ingest)
    edge_topic = f"spBv1.0/{group}/{{}}/edge-1"
    edge = Client(broker, edge_topic.format("NCMD"), will=(edge_topic.format("NDEATH"), payload(
        None, {"name": "bdSeq", "datatype": 4, "long_value": 0})))
    samples: list[Sample] = []

    def pump() -> None:
        """The detector thread's part: decode, then publish what the decoder asks for."""
        while True:
            try:
                topic, raw, received = inbox.get_nowait()
            except queue.Empty:
                return
            samples.extend(router.decode(topic, raw, received))
            for dec in router.decoders:
                out = getattr(dec, "outgoing", [])
                for t, p in out:
                    link.publish(t, p, qos=0, content_type="application/vnd.sparkplug-b")
                out.clear()

    link.start()
    try:
        assert link.wait_connected(TIMEOUT)
        # The subscription is in place once a probe comes back (commands to nodes are ignored by the codec).
        assert wait_for(lambda: (edge.publish(f"spBv1.0/{group}/NCMD/probe", b""), not inbox.empty())[1])
        pump()
        edge.publish(edge_topic.format("NBIRTH"), payload(
            0, {"name": "bdSeq", "datatype": 4, "long_value": 0},
            {"name": REBIRTH_METRIC, "datatype": 11, "boolean_value": False},
            {"name": "Supply/Voltage", "alias": 1, "datatype": 10, "double_value": 230.0}))
        edge.publish(edge_topic.format("DBIRTH") + "/pump-1", payload(
            1, {"name": "bearing_temp", "alias": 10, "datatype": 9, "float_value": 60.5}))
        edge.publish(edge_topic.format("DDATA") + "/pump-1", payload(2, {"alias": 10, "float_value": 61.5}))
        assert wait_for(lambda: (pump(), len(samples) >= 3)[1])
        assert [(s.asset, s.signal, s.value) for s in samples] == [
            ("edge-1", "Supply/Voltage", 230.0), ("pump-1", "bearing_temp", 60.5), ("pump-1", "bearing_temp", 61.5)]
        assert edge.of("NCMD") == []
        edge.publish(edge_topic.format("DDATA") + "/pump-1", payload(7, {"alias": 10, "float_value": 62.0}))
        assert wait_for(lambda: (pump(), bool(edge.of("NCMD")))[1]), "no rebirth request after a seq gap"
        (topic, cmd), = edge.of("NCMD")
        assert topic == f"spBv1.0/{group}/NCMD/edge-1"
        assert [(m.name, m.boolean_value) for m in cmd.metrics] == [(REBIRTH_METRIC, True)]
        assert samples[-1].value == 62.0
    finally:
        link.stop()
        edge.close()


def _alert(asset: str, state: AlarmState) -> dict[str, Any]:
    now = time.time()
    ev = AlarmEvent("a-7", asset, state, Severity.HIGH, now, now - 3, ("zscore",), (), 6.25)
    return alert_payload(ev, site="s", gateway="g", advice_status=AdviceStatus.PENDING)


def test_our_edge_node_births_data_rebirth_and_death_seen_by_a_subscriber(broker: Any, tmp_path: Path) -> None:
    group = f"o{uuid.uuid4().hex[:8]}"
    mqtt = load_settings(None, mqtt={"host": broker.host, "port": broker.port},
                         subscriptions=[{"topic": "x"}], gateway={"state_dir": str(tmp_path)}).mqtt
    host = Client(broker, f"spBv1.0/{group}/#")
    pub = SparkplugPublisher(SparkplugOutSettings(enabled=True, group_id=group, edge_node_id="gw-1",
                                                  rebirth_min_interval_s=0), mqtt, None)
    decoder = SparkplugDecoder(SparkplugMapping(), IngestSettings())
    try:
        pub.start()
        assert pub.wait_connected(TIMEOUT)
        assert wait_for(lambda: host.of("NBIRTH"), TIMEOUT)
        (_, nbirth), = host.of("NBIRTH")
        bd = {m.name: m.long_value for m in nbirth.metrics}["bdSeq"]
        assert nbirth.seq == 0 and bd == pub.node.bd_seq
        pub.publish_alert(_alert("pump-1", AlarmState.RAISED))
        pub.publish_advice(advice_payload(Advice("a-7", "pump-1", "rules", "Check the bearing", ("wear",),
                                                 ("inspect",), "high", 0.5, 3)))
        assert wait_for(lambda: host.of("DDATA"), TIMEOUT)
        (dtopic, dbirth), = host.of("DBIRTH")
        (_, ddata), = host.of("DDATA")
        assert dtopic == f"spBv1.0/{group}/DBIRTH/gw-1/pump-1"
        v = {m.name: getattr(m, m.WhichOneof("value") or "is_null") for m in dbirth.metrics}
        assert v["alert/id"] == "a-7" and v["alert/state"] == "raised" and v["alert/score"] == 6.25
        names = {m.alias: m.name for m in dbirth.metrics}
        assert {names[m.alias]: getattr(m, m.WhichOneof("value")) for m in ddata.metrics}["advice/summary"] == \
            "Check the bearing"
        assert [dbirth.seq, ddata.seq] == [1, 2]
        # Our own ingest decoder reads our output: births define aliases, numeric metrics become samples.
        now = time.time()
        got = [s for t, raw in list(host.msgs) for s in decoder.decode(t, raw, now)]
        assert {(s.asset, s.signal, s.value) for s in got} == {("pump-1", "alert/score", 6.25),
                                                                ("pump-1", "advice/confidence", 0.5)}
        assert decoder.skipped == {} and decoder.outgoing == []
        # A host's rebirth request: NBIRTH (seq 0, same bdSeq) and the DBIRTH with current values again.
        host.publish(*rebirth_command(group, "gw-1", int(now * 1000)))
        assert wait_for(lambda: len(host.of("NBIRTH")) == 2 and len(host.of("DBIRTH")) == 2)
        reborn = host.of("NBIRTH")[1][1]
        assert reborn.seq == 0 and {m.name: m.long_value for m in reborn.metrics}["bdSeq"] == bd
        assert {m.name: m.string_value for m in host.of("DBIRTH")[1][1].metrics}["advice/urgency"] == "high"
        # The will registered for this session carries the same bdSeq as its NBIRTH.
        will = pb.Payload.FromString(pub._client._will_payload)
        assert {m.name: m.long_value for m in will.metrics}["bdSeq"] == bd
    finally:
        pub.stop()
    assert wait_for(lambda: host.of("NDEATH"), TIMEOUT)
    (_, death), = host.of("NDEATH")
    assert {m.name: m.long_value for m in death.metrics}["bdSeq"] == bd
    host.close()
