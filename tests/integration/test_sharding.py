"""Two daemons, one broker, disjoint topic filters: each instance sees and alerts on its own shard only."""

from __future__ import annotations

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

from tests.util import wait_for

pytestmark = [pytest.mark.broker]
TIMEOUT = 20.0
NORMAL, SPIKE = 300, 6




def shard_settings(broker: Any, tmp_path: Path, tag: str, line: str) -> Any:
    from edgeslm.settings import load_settings
    limits = {"signals": {"bearing_temp": {"high": 70.0}}}  # a hard limit makes the spike alarm certain
    return load_settings(
        None,
        gateway={"name": f"gw-{line}-{tag}", "site": f"site-{tag}", "state_dir": str(tmp_path / line)},
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"edgeslm-{line}-{tag}", "clean_start": True},
        subscriptions=[{"topic": f"plant-{tag}/{line}/+/telemetry", "json": {"asset": "topic:2"}}],
        advice={"enabled": False},
        assets={f"{line}-pump-{i}": limits for i in (1, 2)},
    )


def test_two_instances_with_disjoint_filters_each_see_only_their_shard_and_both_alert(
        broker: Any, tmp_path: Path) -> None:
    try:
        from edgeslm.app import App
    except ImportError as e:  # modules of other work in progress; the test runs once they land
        pytest.skip(f"edgeslm.app not importable yet: {e}")
    tag = uuid.uuid4().hex[:8]
    alerts: list[dict[str, Any]] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    rec = paho.Client(CallbackAPIVersion.VERSION2)
    rec.on_subscribe = lambda *_: subscribed.set()

    def on_message(c: Any, u: Any, m: paho.MQTTMessage) -> None:
        with lock:
            alerts.append(json.loads(m.payload))

    rec.on_message = on_message
    rec.connect(broker.host, broker.port)
    rec.loop_start()
    rec.subscribe(f"edgeslm/site-{tag}/+/alerts", qos=1)
    assert subscribed.wait(10)
    apps = {line: App(shard_settings(broker, tmp_path, tag, line)) for line in ("line1", "line2")}
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for app in apps.values():
            app.start()
        assert all(app.link is not None and app.link.wait_connected(10) for app in apps.values())
        rng = random.Random(7)
        t0 = time.time() - 20
        infos = []
        for i in range(NORMAL + SPIKE):
            for line in ("line1", "line2"):
                for n in (1, 2):
                    value = 75.0 + n if i >= NORMAL and n == 1 else 60.0 + rng.gauss(0, 0.2)
                    body = {"ts": round(t0 + i * 0.05, 3), "bearing_temp": round(value, 3)}
                    infos.append(pub.publish(f"plant-{tag}/{line}/{line}-pump-{n}/telemetry", json.dumps(body), qos=1))
        for info in infos:
            info.wait_for_publish(10)
        per_shard = 2 * (NORMAL + SPIKE)
        assert wait_for(lambda: all(a.counters.get("samples_in") == per_shard for a in apps.values())), \
            {line: a.counters.get("samples_in") for line, a in apps.items()}

        def raised() -> set[tuple[str, str]]:
            with lock:
                return {(a["gateway"], a["asset"]) for a in alerts if a.get("state") == "raised"}

        want = {(f"gw-line1-{tag}", "line1-pump-1"), (f"gw-line2-{tag}", "line2-pump-1")}
        assert wait_for(lambda: want <= raised(), TIMEOUT), alerts
        time.sleep(0.5)  # a cross-shard alert, if any, would have arrived by now
        assert raised() == want
        for line, app in apps.items():
            assert app.engine is not None
            stats = app.engine.stats()
            assert stats["assets"] == 2 and stats["series"] >= 2, stats  # its two pumps, never the other line's
            assert app.counters.get("samples_in") == per_shard
            assert app.counters.get("bad_payloads") == 0, line
    finally:
        for app in apps.values():
            app.stop()
        pub.loop_stop()
        rec.loop_stop()
        rec.disconnect()
