"""Soak: the daemon for a long time at a steady rate with random faults; RSS, open files, counters over time.

Faults, at random (seeded): bursts of malformed payloads, bursts of 10x the rate, the broker stopped for a
while and restarted. On a fixed schedule (--overload-every, --overload-s) a second process floods as fast as it
can, far beyond what the daemon can score, so the inbound queue sheds (drop-oldest) for a sustained period.
Every --sample-s seconds it records the daemon's RSS, open file descriptors, threads and status counters.
Writes <out>/soak.csv and, with matplotlib, <out>/soak.png.

    python bench/soak.py [--duration 3600] [--assets 50] [--signals 5] [--rate 50] [--seed 1] [--out DIR]
Ends with one JSON line: rss_start_mb, rss_end_mb, rss_max_mb, rss_growth_last_half_mb, fds_start, fds_end,
samples_in, samples_scored, bad_payloads, dropped, restarts_survived, overload_phases, status_in_overload,
scored_in_overload.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as paho
from _common import REPO, final_json, machine, parser
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm.mqtt.localbroker import LocalBroker

# The flood runs in its own process (as a misbehaving device would): in the bench's process it would starve the
# status watcher of the GIL. It publishes at QoS 0 as fast as it can, for its own devices (f0, f1, ...: their
# samples do not interleave with the steady publisher's, which the daemon would reject as non-monotonic), with
# --flood-signals signals a message (30: on a quiet machine 10 were not always more than the daemon could score)
# so the daemon's detectors, not the flooder, are the bottleneck; a QoS 1 publish every 500
# messages, waited for, keeps paho's in-memory queue (the flooder's own memory) bounded.
FLOOD = r"""
import json, random, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, seconds, assets, signals = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5])
c = paho.Client(CallbackAPIVersion.VERSION2)
c.connect(host, port)
c.loop_start()
rng = random.Random(2)
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    body = {"ts": round(time.time(), 3)}
    body.update({f"s{k}": round(50 + rng.gauss(0, 1), 3) for k in range(signals)})
    i += 1
    c.publish(f"soak/f{i % assets}/telemetry", json.dumps(body), qos=1 if i % 500 == 0 else 0)
    if i % 500 == 0:
        c.publish("soak/flood/sync", b"", qos=1).wait_for_publish(10)
c.disconnect()
c.loop_stop()
print(i, flush=True)
"""
BAD = [b'{"s0": NaN}', b"\xff\xfe", b"[" * 500, b'{"s0": true}', b"", b'{"ts": 1e20, "s0": 1}', b"not json"]


def proc(pid: int) -> dict[str, float]:
    st = {k: v for k, v in (ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines())}
    return {"rss_mb": int(st["VmRSS"].split()[0]) / 1024, "threads": int(st["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class StatusWatch:
    def __init__(self, b: LocalBroker, topic: str) -> None:
        self.last: dict[str, Any] = {}
        self.received = 0  # status messages seen: the daemon keeps reporting even while it sheds load
        self.c = paho.Client(CallbackAPIVersion.VERSION2)
        self.c.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.c.on_message = self._on
        self.c.reconnect_delay_set(1, 2)
        self.c.connect_async(b.host, b.port)
        self.c.loop_start()

    def _on(self, c: Any, u: Any, m: paho.MQTTMessage) -> None:
        try:
            body = json.loads(m.payload)
            if body.get("state") == "online" and "counters" in body:
                self.last = body
                self.received += 1
        except ValueError:
            pass


def main() -> None:
    p = parser("Long-running soak with random faults.", out=REPO / "bench" / "out" / "soak")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds (default one hour)")
    p.add_argument("--assets", type=int, default=50)
    p.add_argument("--signals", type=int, default=5)
    p.add_argument("--rate", type=float, default=50.0, help="messages per second")
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--overload-every", type=float, default=600.0, help="seconds between flood phases (0 = none)")
    p.add_argument("--overload-s", type=float, default=60.0, help="length of each flood phase")
    p.add_argument("--flood-signals", type=int, default=30, help="signals per flood message")
    a = p.parse_args()
    rng = random.Random(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; soak for {a.duration:.0f} s at {a.rate:g} msg/s")
    b = LocalBroker(workdir=a.out / "broker")
    (a.out / "broker").mkdir(exist_ok=True)
    b.start()
    cfg = a.out / "soak.toml"
    cfg.write_text(f"""
[gateway]
name = "soak"
state_dir = "{a.out / 'state'}"
[mqtt]
host = "{b.host}"
port = {b.port}
reconnect_max_s = 2
[[subscriptions]]
topic = "soak/+/telemetry"
[subscriptions.json]
asset = "topic:1"
[health]
status_interval_s = {max(1.0, a.sample_s / 2)}
[logging]
level = "error"
""")
    daemon = subprocess.Popen([sys.executable, "-m", "edgeslm", "run", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=open(a.out / "daemon.log", "w"))  # noqa: SIM115
    watch = StatusWatch(b, "edgeslm/soak/status")
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.reconnect_delay_set(1, 2)
    pub.connect_async(b.host, b.port)
    pub.loop_start()
    stop = threading.Event()
    flooder: subprocess.Popen[str] | None = None  # the flood phase's process, None between phases
    flood_sent = 0
    restarts = 0

    def publisher() -> None:
        i, t0 = 0, time.monotonic()
        burst_until = 0.0
        while not stop.is_set():
            now = time.monotonic()
            rate = a.rate * (10 if now < burst_until else 1)
            if rng.random() < 0.0005:
                burst_until = now + 5.0
            asset = f"m{i % a.assets}"
            if rng.random() < 0.01:
                payload = rng.choice(BAD)
            else:
                body = {"ts": round(time.time(), 3)}
                body.update({f"s{k}": round(50 + rng.gauss(0, 1), 3) for k in range(a.signals)})
                payload = json.dumps(body).encode()
            pub.publish(f"soak/{asset}/telemetry", payload, qos=0)
            i += 1
            t0 += 1.0 / rate
            stop.wait(max(0.0, t0 - time.monotonic()))

    threading.Thread(target=publisher, daemon=True).start()
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    next_fault = start + rng.uniform(60, 300)
    phases = 0
    status_in_overload = 0
    scored_in_overload = 0
    flood_at = start + a.overload_every if a.overload_every > 0 else float("inf")
    flood_end = 0.0
    flood_mark: tuple[int, int] = (0, 0)
    try:
        while (elapsed := time.monotonic() - start) < a.duration:
            time.sleep(a.sample_s)
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited with {daemon.returncode}; see {a.out / 'daemon.log'}")
            c = watch.last.get("counters", {})
            scored = watch.last.get("detect", {}).get("samples_scored", 0)
            row = {"t_s": round(elapsed, 1), **proc(daemon.pid), "samples_in": c.get("samples_in", 0),
                   "samples_scored": scored, "bad_payloads": c.get("bad_payloads", 0),
                   "dropped": watch.last.get("ingest", {}).get("dropped_oldest", 0),
                   "outbox_queued": watch.last.get("outbox", {}).get("queued", 0),
                   "overload": int(flooder is not None)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            now = time.monotonic()
            if flooder is not None and now >= flood_end:
                out_s, _ = flooder.communicate(timeout=60)
                flooder = None
                flood_sent += int(out_s.split()[0]) if out_s.strip() else 0
                status_in_overload += watch.received - flood_mark[0]
                scored_in_overload += scored - flood_mark[1]
                print(f"overload phase {phases} ended: {watch.received - flood_mark[0]} status messages, "
                      f"{scored - flood_mark[1]} samples scored during it", flush=True)
            elif flooder is None and now >= flood_at and now + a.overload_s < start + a.duration:
                phases += 1
                flood_mark = (watch.received, scored)
                flood_end = now + a.overload_s
                flood_at = now + a.overload_every
                print(f"overload phase {phases}: a second publisher floods flat out for {a.overload_s:.0f} s",
                      flush=True)
                flooder = subprocess.Popen([sys.executable, "-c", FLOOD, b.host, str(b.port), str(a.overload_s),
                                            str(a.assets), str(a.flood_signals)], stdout=subprocess.PIPE,
                                           text=True)
            if time.monotonic() >= next_fault and flooder is None:
                down = rng.uniform(5, 30)
                print(f"fault: broker down for {down:.0f} s", flush=True)
                b.stop()
                time.sleep(down)
                b.start()
                restarts += 1
                next_fault = time.monotonic() + rng.uniform(120, 600)
    finally:
        stop.set()
        daemon.terminate()
        daemon.wait(30)
        pub.loop_stop()
        watch.c.loop_stop()
        b.close()
    with open(a.out / "soak.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
        t = [r["t_s"] / 60 for r in rows]
        ax[0].plot(t, [r["rss_mb"] for r in rows])
        ax[0].set_ylabel("RSS MB")
        ax[1].plot(t, [r["fds"] for r in rows], label="open files")
        ax[1].plot(t, [r["threads"] for r in rows], label="threads")
        ax[1].legend()
        ax[2].plot(t, [r["samples_in"] for r in rows], label="samples in")
        ax[2].plot(t, [r["bad_payloads"] for r in rows], label="bad payloads")
        ax[2].set_yscale("symlog")
        ax[2].legend()
        ax[2].set_xlabel("minutes")
        fig.tight_layout()
        fig.savefig(a.out / "soak.png", dpi=90)
        print(f"plot: {a.out / 'soak.png'}")
    except ImportError:
        print("matplotlib not installed: CSV only (pip install 'edgeslm[plot]')")
    settled = rows[min(len(rows) - 1, max(1, len(rows) // 10))]  # after start-up allocations
    half = rows[len(rows) // 2]
    out = {"rss_start_mb": round(settled["rss_mb"], 1), "rss_end_mb": round(rows[-1]["rss_mb"], 1),
           "rss_max_mb": round(max(r["rss_mb"] for r in rows), 1),
           "rss_growth_last_half_mb": round(rows[-1]["rss_mb"] - half["rss_mb"], 1), "fds_start": settled["fds"],
           "fds_end": rows[-1]["fds"], "samples_in": rows[-1]["samples_in"],
           "samples_scored": rows[-1]["samples_scored"], "bad_payloads": rows[-1]["bad_payloads"],
           "dropped": rows[-1]["dropped"], "restarts_survived": restarts, "overload_phases": phases,
           "status_in_overload": status_in_overload, "scored_in_overload": scored_in_overload,
           "flood_sent": flood_sent,
           "duration_s": a.duration}
    final_json(out)


if __name__ == "__main__":
    main()
