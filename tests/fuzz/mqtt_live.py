"""Random hostile telemetry through the real MQTT path into a running daemon (outside CI).

    .venv/bin/python -m tests.fuzz.mqtt_live [--messages 3000] [--seed 42]

Starts a private mosquitto and the daemon (no model), then publishes seeded random payloads on JSON and
plain-number topics with odd asset names: random bytes, random JSON trees (deep, huge numbers, empty keys,
wildcards in keys), malformed numbers and timestamps, invented signal names (past ingest.max_series), BOMs,
UTF-16, NULs. A canary sample every 500 messages must be scored within 2 s. At the end every message must be
accounted for (received = sent, nothing lost between broker and decoder), the detector thread alive, no
detector errors; it prints the rejection counts by reason.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeslm.mqtt.localbroker import LocalBroker
from tests.integration.helpers import daemon_settings, publisher, running
from tests.util import wait_for

ASSETS = ["m1", "m2", "a b", "é", "x" * 300, "%", "..", "\u202e"]


def _json_tree(r: random.Random, depth: int = 0) -> Any:
    t = r.random()
    if depth > 6 or t < 0.3:
        return r.choice([None, True, False, r.uniform(-1e308, 1e308), r.randint(-2**70, 2**70), "x" * r.randint(0, 50),
                         "é", 0, -0.0, 1e-320])
    if t < 0.6:
        return [_json_tree(r, depth + 1) for _ in range(r.randint(0, 5))]
    keys = ["ts", "a", "b", "temp", "", " ", "ts.x", "a/b", "#", "+", "\u0000", "x" * 200, "values"]
    return {r.choice(keys): _json_tree(r, depth + 1) for _ in range(r.randint(0, 6))}


def payload(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.25:
        return bytes(r.getrandbits(8) for _ in range(r.randint(0, 300)))
    if k < 0.5:
        return json.dumps(_json_tree(r)).encode()
    if k < 0.6:
        return ("{" * r.randint(1, 3000)).encode()
    if k < 0.7:
        ts = r.choice(["1e999", "-1", "99999999999999", '"2026-13-45"', "NaN", "null", str(time.time())])
        v = r.choice(["1e999", "NaN", "-Infinity", "1" * 5000, "0x10", "01", "1_000", "true", '"3"'])
        return f'{{"ts": {ts}, "temp": {v}}}'.encode()
    if k < 0.8:
        return json.dumps({"ts": time.time(), **{f"k{r.randint(0, 10**9)}": r.random()
                                                   for _ in range(r.randint(1, 50))}}).encode()
    return r.choice([b"", b" ", b"\xef\xbb\xbf{}", '{"ts":1,"a":1}'.encode("utf-16"), b"\x00" * 100, b"[]" * 1000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000, help="pairs of JSON + plain messages")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    r = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="edgeslm-fuzz-"))
    (tmp / "broker").mkdir()
    broker = LocalBroker(workdir=tmp / "broker")
    broker.start()
    tag = "fz"
    try:
        with running(daemon_settings(broker, tmp, tag)) as app, publisher(broker) as pub:
            assert app.pipeline is not None and app.engine is not None
            sent = 0
            for i in range(a.messages):
                asset = r.choice(ASSETS)
                pub.publish(f"t-{tag}/{asset}/telemetry", payload(r), qos=1).wait_for_publish(5)
                pub.publish(f"p-{tag}/{asset}/{r.choice(['t', 'v', 'ü'])}", payload(r)[:50], qos=1).wait_for_publish(5)
                sent += 2
                if i % 500 == 0:
                    before = app.counters.get("samples_in")
                    canary = json.dumps({"ts": time.time(), "c": 1.0})
                    pub.publish(f"t-{tag}/canary/telemetry", canary, qos=1).wait_for_publish(5)
                    sent += 1
                    assert wait_for(lambda b=before: app.counters.get("samples_in") > b, 2), f"canary lost after {i}"
            pipe = app.pipeline
            assert wait_for(lambda: app.counters.get("messages_in") + pipe.dropped == sent, 20), \
                f"received {app.counters.get('messages_in')} + shed {pipe.dropped} != sent {sent}"
            snap = app.counters.snapshot()
            assert pipe.is_alive() and not snap.get("detector_errors"), snap
            print(f"{sent} messages sent, all received; samples scored {snap.get('samples_in')}, "
                  f"series {app.engine.series_count}; rejected by reason:")
            for k, v in sorted(snap.items()):
                if k.startswith("bad_payload."):
                    print(f"  {k.removeprefix('bad_payload.'):<20} {v}")
    finally:
        broker.close()


if __name__ == "__main__":
    main()
