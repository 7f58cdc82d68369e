"""The daemon end to end: real mosquitto, real fixture Phi-3 model, telemetry in, alert and advice out."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.settings import Settings, load_settings
from tests.integration.helpers import publisher, running
from tests.util import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.model]


class Recorder:
    """A plain paho subscriber: what an HMI would see."""

    def __init__(self, host: str, port: int, *topics: str) -> None:
        self.msgs: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2)
        self.c.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.c.on_subscribe = lambda *_: self.ready.set()
        self.c.on_message = self._on
        self.c.connect(host, port)
        self.c.loop_start()
        assert self.ready.wait(10)

    def _on(self, c: Any, u: Any, m: paho.MQTTMessage) -> None:
        with self.lock:
            self.msgs.append((m.topic, json.loads(m.payload)))

    def of(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for t, b in self.msgs if t.endswith(suffix)]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()




def make_settings(broker: Any, tmp_path: Path, tag: str, model: Path | None) -> Settings:
    return load_settings(
        None,
        gateway={"name": f"gw-{tag}", "site": f"site-{tag}", "state_dir": str(tmp_path / "state")},
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"edgeslm-{tag}"},
        subscriptions=[{"topic": f"t-{tag}/+/telemetry", "json": {"asset": "topic:1"}}],
        advice={"model_dir": str(model) if model else None, "deadline_s": 30.0},
        assets={"pump-1": {"machine_type": "centrifugal pump", "signals": {"bearing_temp": {"unit": "degC"}}}},
        health={"status_interval_s": 1},
    )


def test_spike_gives_one_alert_and_model_advice_despite_malformed_payload(
        broker: Any, fixture_model: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = make_settings(broker, tmp_path, tag, fixture_model)
    rec = Recorder(broker.host, broker.port, f"edgeslm/site-{tag}/#", f"edgeslm/gw-{tag}/status")
    try:
        with publisher(broker) as pub, running(settings) as app:
            assert app.advisor is not None
            assert wait_for(lambda: app.advisor.model_loaded, 30), app.advisor.describe()
            topic = f"t-{tag}/pump-1/telemetry"
            rng = random.Random(1)
            t0 = time.time() - 10
            def send(i: int, value: float) -> None:
                body = {"ts": round(t0 + i * 0.02, 3), "bearing_temp": round(value, 3)}
                pub.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)
            for i in range(300):
                send(i, 60.0 + rng.gauss(0, 0.2))
            pub.publish(topic, b'{"ts": NaN, "bearing_temp": ', qos=1).wait_for_publish(5)  # malformed
            pub.publish(topic, b"\xff\xfe garbage", qos=1).wait_for_publish(5)
            for i in range(300, 306):
                send(i, 75.0)  # the spike: about 75 standard deviations
            for i in range(306, 420):
                send(i, 60.0 + rng.gauss(0, 0.2))

            assert wait_for(lambda: len(rec.of("/advice")) >= 1, 30), rec.msgs[-5:]
            time.sleep(1.0)  # anything extra (a second alert or advice) would show up now
            alerts = rec.of("/alerts")
            raised = [a for a in alerts if a["state"] == "raised"]
            advice = rec.of("/advice")
            assert len(raised) == 1, alerts
            assert {a["alert_id"] for a in alerts} == {raised[0]["alert_id"]}
            assert raised[0]["asset"] == "pump-1" and "bearing_temp" in raised[0]["signals"]
            assert raised[0]["advice_status"] == "pending"
            assert len(advice) == 1
            adv = advice[0]
            assert adv["alert_id"] == raised[0]["alert_id"]
            assert adv["source"] == "model", adv
            assert adv["urgency"] in {"low", "medium", "high", "critical"}
            assert 0.0 <= adv["confidence"] <= 1.0
            assert isinstance(adv["summary"], str) and isinstance(adv["recommended_actions"], list)
            # every message carries the outbox's dedupe id and per-topic sequence
            assert all("id" in m and "seq" in m for m in alerts + advice)
            assert wait_for(lambda: any(a["advice_status"] == "done" for a in rec.of("/alerts")), 5)
            # the malformed payloads were counted, and processing went on after them
            assert app.counters.get("bad_payloads") == 2
            assert app.counters.get("samples_in") == 420
    finally:
        rec.close()
    statuses = [b for t, b in rec.msgs if t.endswith("/status")]
    assert statuses and statuses[-1]["state"] == "offline"


def test_hmi_sees_partial_advice_before_the_advice_of_the_same_alert(
        broker: Any, fixture_model: Path, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    base = make_settings(broker, tmp_path, tag, fixture_model)
    settings = base.model_copy(update={"advice": base.advice.model_copy(update={"partial_interval_s": 0.01})})
    rec = Recorder(broker.host, broker.port, f"edgeslm/site-{tag}/#")
    try:
        with publisher(broker) as pub, running(settings) as app:
            assert app.advisor is not None and wait_for(lambda: app.advisor.model_loaded, 30), app.advisor.describe()
            topic = f"t-{tag}/pump-1/telemetry"
            rng = random.Random(2)
            t0 = time.time() - 10
            for i in range(306):
                value = 75.0 if i >= 300 else 60.0 + rng.gauss(0, 0.2)
                pub.publish(topic, json.dumps({"ts": round(t0 + i * 0.02, 3), "bearing_temp": round(value, 3)}),
                            qos=1).wait_for_publish(5)
            assert wait_for(lambda: len(rec.of("/advice")) >= 1, 30), rec.msgs[-5:]
            time.sleep(0.5)
            with rec.lock:
                msgs = list(rec.msgs)
            (i_adv,) = [i for i, (t, _) in enumerate(msgs) if t.endswith("/advice")]
            adv = msgs[i_adv][1]
            partial = [(i, b) for i, (t, b) in enumerate(msgs)
                       if t == f"edgeslm/site-{tag}/pump-1/advice/partial" and b["alert_id"] == adv["alert_id"]]
            assert len(partial) >= 2, msgs
            # all of them before the advice, numbered from 1, text growing, one final (the last)
            assert all(i < i_adv for i, _ in partial)
            bodies = [b for _, b in partial]
            assert [b["part"] for b in bodies] == list(range(1, len(bodies) + 1))
            assert [b["final"] for b in bodies] == [False] * (len(bodies) - 1) + [True]
            assert all(b["text"].startswith(a["text"].rstrip()) for a, b in itertools.pairwise(bodies))
            final = bodies[-1]
            assert final["accepted"] is (adv["source"] == "model") and final["stop"] == "eos"
            if adv["source"] == "model":
                assert final["fields"]["summary"].strip() == adv["summary"]
            # live-only: not through the outbox (no id/seq), and counted as sent
            assert all("id" not in b and "seq" not in b for b in bodies)
            assert app.counters.get("advice_partials_sent") == len(bodies)
            assert app.counters.get("advice_partials_dropped") == 0
    finally:
        rec.close()
