"""Overload: at rising rates the inbound queue sheds the oldest, visibly, and the books balance exactly."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import daemon_settings, publisher, running, subscriber
from tests.util import wait_for

pytestmark = pytest.mark.broker


def test_rising_rates_until_shedding_with_exact_accounting(broker: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = daemon_settings(broker, tmp_path, tag, ingest={"queue_size": 10})
    sent = 0
    shed_at = None
    with running(settings) as app, publisher(broker) as pub:
        assert app.pipeline is not None
        topic = f"t-{tag}/m1/telemetry"
        body = json.dumps({"a": 1.5, "b": 2.5, "c": 3.5, "d": 4.5}).encode()
        for rate in (200, 1000, 5000, 0):  # 0 = as fast as the client goes
            n = 2000 if rate else 20000
            t0 = time.monotonic()
            infos = []
            for i in range(n):
                infos.append(pub.publish(topic, body, qos=1))
                if rate and i % 50 == 0:
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            for info in infos:
                info.wait_for_publish(10)
            sent += n

            def settled(total: int = sent) -> bool:
                return app.counters.get("messages_in") + app.pipeline.dropped == total

            assert wait_for(settled, 30), (sent, app.counters.get("messages_in"), app.pipeline.dropped)
            if app.pipeline.dropped and shed_at is None:
                shed_at = rate or "max"
        # Status keeps being published under load and reports the shedding.
        status = app.status()
        assert status["ingest"]["dropped_oldest"] == app.pipeline.dropped
        assert app.pipeline.is_alive()
    assert shed_at is not None, "no shedding even at full speed with a 10-message queue"
    accepted = app.counters.get("messages_in")
    assert accepted + app.pipeline.dropped == sent
    assert accepted > 0


# A misbehaving device in its own process (in ours it would share the GIL with the daemon under test): QoS 0
# as fast as paho goes, 10 signals a message, a QoS 1 publish every 500 (waited for) to bound its own queue.
FLOOD = r"""
import json, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, seconds, topic = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
c = paho.Client(CallbackAPIVersion.VERSION2)
c.connect(host, port)
c.loop_start()
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    i += 1
    body = {"ts": round(time.time(), 6)} | {f"s{k}": 50.0 + (i * k) % 7 for k in range(10)}
    c.publish(topic % (i % 20), json.dumps(body), qos=1 if i % 500 == 0 else 0)
    if i % 500 == 0:
        c.publish("flood/sync", b"", qos=1).wait_for_publish(10)
c.disconnect()
c.loop_stop()
print(i)
"""


def test_status_keeps_flowing_through_the_broker_during_a_telemetry_flood(broker: Any, tmp_path: Path) -> None:
    """The daemon (its own process, as in service) sheds a flood far beyond what it can score, and its status
    still reaches subscribers every interval, each one acknowledged before the next goes (in-flight window 1).

    The soak bench once showed status stopping for a whole flood on a single MQTT session (the broker's backlog
    of telemetry for us in front of our PUBACKs; docs/design.md, "Two MQTT sessions"); this is the guard.
    """
    tag = uuid.uuid4().hex[:8]
    cfg = tmp_path / "edgeslm.toml"
    cfg.write_text(f"""
[gateway]
name = "gw-{tag}"
state_dir = "{tmp_path / 'state'}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "edgeslm-{tag}"
clean_start = true
[[subscriptions]]
topic = "t-{tag}/+/telemetry"
[subscriptions.json]
asset = "topic:1"
[ingest]
queue_size = 200
[outbox]
inflight = 1  # each status needs the PUBACK of the one before: what a full in-flight window does
[health]
status_interval_s = 1
[logging]
level = "error"
""")
    seconds = 8.0
    with subscriber(broker, f"edgeslm/gw-{tag}/status") as inbox:
        daemon = subprocess.Popen([sys.executable, "-m", "edgeslm", "run", "--config", str(cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def counters() -> dict[str, Any] | None:
                try:
                    body = json.loads(inbox.get(timeout=0.5)[1])
                except queue.Empty:
                    return None
                return body if body.get("state") == "online" and "counters" in body else None

            assert wait_for(lambda: counters() is not None, 20), "no status from the daemon before the flood"
            flood = subprocess.Popen([sys.executable, "-c", FLOOD, broker.host, str(broker.port), str(seconds),
                                      f"t-{tag}/m%d/telemetry"], stdout=subprocess.PIPE, text=True)
            time.sleep(2.0)  # the flood is under way and the daemon is behind
            while not inbox.empty():
                inbox.get()
            seen: list[dict[str, Any]] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds - 3.0:
                body = counters()
                if body is not None:
                    seen.append(body)
            out, _ = flood.communicate(timeout=60)
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        finally:
            daemon.terminate()
            daemon.wait(20)
    sent = int(out.split()[0])
    assert sent > 10_000, f"the flood was too slow to overload anything ({sent} messages)"
    # ~5 s of flood at a 1 s status interval: at least 3 status messages got through, and they show work
    # and shedding.
    assert len(seen) >= 3, f"only {len(seen)} status messages during the flood"
    assert seen[-1]["counters"]["samples_in"] > seen[0]["counters"]["samples_in"]
    assert seen[-1]["ingest"]["dropped_oldest"] > 0, "the daemon kept up: no overload, nothing tested"
