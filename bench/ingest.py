"""Ingest cost: the daemon's message rate against a bare paho subscriber, and its CPU/RSS at plant load.

(a) bare: a paho-mqtt subscriber that only counts messages; (b) the daemon (App, default detectors, no
model) counting samples fully processed by the detectors; both rates are in messages/s (a daemon message
counts once all its K samples went through the detectors), for K = --signals and for K = 1. Both drain
the SAME backlog: a publisher in a
separate process loads N messages into the broker for the subscriber's persistent session while it is
offline, then the subscriber connects and we time the drain. That measures the consumer alone, not the
publisher. Then (c) the daemon as its own process at a steady 200 assets x 10 signals at 1 Hz: CPU % of one
core and RSS, and (d) idle: CPU and wake-ups per second with no telemetry.

    python bench/ingest.py [--messages 50000] [--assets 50] [--signals 10] [--steady-s 30] [--reps 2]
Ends with one JSON line: bare_per_s, daemon_per_s, ratio, steady_cpu_pct, rss_mb (+ details).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as paho
from _common import REPO, final_json, machine, parser
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm import logs
from edgeslm.app import App
from edgeslm.mqtt.localbroker import LocalBroker
from edgeslm.settings import load_settings

PUBLISHER = r"""
import json, random, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, n, assets, signals, rate, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect(host, port)
c.loop_start()
rng = random.Random(0)
names = [f"s{k}" for k in range(signals)]
t0 = time.monotonic()
infos = []
for i in range(n):
    a = i % assets
    body = {"ts": round(time.time(), 3)}
    for s in names:
        body[s] = round(50.0 + rng.gauss(0, 1), 3)
    infos.append(c.publish(f"{prefix}/m{a}/telemetry", json.dumps(body), qos=1))
    if rate:
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
for info in infos:
    info.wait_for_publish(60)
c.disconnect(); c.loop_stop()
print(n, time.monotonic() - t0, flush=True)
"""


def publish(host: str, port: int, n: int, assets: int, signals: int, prefix: str, rate: float = 0.0
            ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, host, str(port), str(n), str(assets), str(signals),
                             str(rate), prefix], stdout=subprocess.PIPE, text=True)


def bare_rate(b: LocalBroker, n: int, assets: int, signals: int, prefix: str) -> float:
    """A paho subscriber that only counts: connect once to create the session, go offline, load, drain."""
    count = 0
    first = last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        nonlocal count, first, last
        if count == 0:
            first = time.perf_counter()
        count += 1
        last = time.perf_counter()
        if count >= n:
            done.set()

    cid = f"bench-bare-{time.time_ns()}"

    def client() -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        c.on_message = on_message
        c.on_subscribe = lambda *_: subscribed.set()
        return c

    c = client()
    c.connect(b.host, b.port)
    c.subscribe(f"{prefix}/+/telemetry", qos=1)
    c.loop_start()
    assert subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    publish(b.host, b.port, n, assets, signals, prefix).wait()
    c = client()
    c.connect(b.host, b.port)
    c.loop_start()
    assert done.wait(300), f"bare subscriber got {count}/{n}"
    c.disconnect()
    c.loop_stop()
    return (n - 1) / (last - first)


def daemon_rate(b: LocalBroker, n: int, assets: int, signals: int, prefix: str, state: Path) -> float:
    tag = f"{time.time_ns()}"
    s = load_settings(None, gateway={"name": f"bench-{tag}", "state_dir": str(state / tag)},
                      mqtt={"host": b.host, "port": b.port, "client_id": f"bench-daemon-{tag}"},
                      subscriptions=[{"topic": f"{prefix}/+/telemetry", "json": {"asset": "topic:1"}}],
                      advice={"model_dir": None}, logging={"level": "error"},
                      # The whole backlog fits the inbound queue: this measures processing speed. With the
                      # default bound the queue sheds the oldest while paho reads faster than detection.
                      ingest={"queue_size": n + 1})
    app = App(s)
    app.start()  # creates the persistent session and subscription
    assert app.link is not None and app.link.wait_connected(10)
    time.sleep(0.5)
    app.stop()
    publish(b.host, b.port, n, assets, signals, prefix).wait()
    app = App(s)
    want = n * signals
    first = 0.0
    app.start()
    assert app.pipeline is not None
    deadline = time.monotonic() + 300
    pipe = app.pipeline
    while pipe.processed_samples < want and time.monotonic() < deadline:
        if not first and pipe.processed_samples:
            first = time.perf_counter()
        time.sleep(0.001)
    last = time.perf_counter()
    got = pipe.processed_samples
    app.stop()
    assert got >= want, f"daemon processed {got}/{want} samples"
    return (n - 1) / (last - first)  # messages/s, comparable with the bare subscriber's


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def wakeups(pid: int) -> int:
    """Voluntary context switches of all threads: each is a wake-up from a wait."""
    return sum(proc_status(int(t.name), "voluntary_ctxt_switches") for t in Path(f"/proc/{pid}/task").iterdir())


def steady_and_idle(b: LocalBroker, seconds: float, state: Path) -> dict[str, float]:
    """The daemon as its own process (as under systemd): 200 assets x 10 signals at 1 Hz, then idle."""
    cfg = state / "steady.toml"
    cfg.write_text(f"""
[gateway]
name = "bench-steady"
state_dir = "{state / 'steady'}"
[mqtt]
host = "{b.host}"
port = {b.port}
[[subscriptions]]
topic = "steady/+/telemetry"
[subscriptions.json]
asset = "topic:1"
[logging]
level = "warning"
format = "json"
""")
    d = subprocess.Popen([sys.executable, "-m", "edgeslm", "run", "--config", str(cfg)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)  # start-up
        pub = publish(b.host, b.port, int(200 * (seconds + 5)), 200, 10, "steady", rate=200.0)
        time.sleep(5.0)  # detectors warm up, allocations settle
        c0, t0 = proc_cpu_s(d.pid), time.monotonic()
        time.sleep(seconds)
        cpu_pct = 100 * (proc_cpu_s(d.pid) - c0) / (time.monotonic() - t0)
        rss_mb = proc_status(d.pid, "VmRSS") / 1024
        hwm_mb = proc_status(d.pid, "VmHWM") / 1024
        pub.wait()
        time.sleep(2.0)
        c0, t0, w0 = proc_cpu_s(d.pid), time.monotonic(), wakeups(d.pid)
        time.sleep(10.0)
        idle_s = time.monotonic() - t0
        idle_cpu = 100 * (proc_cpu_s(d.pid) - c0) / idle_s
        idle_wakeups = (wakeups(d.pid) - w0) / idle_s
    finally:
        d.terminate()
        d.wait(30)
    return {"steady_cpu_pct": cpu_pct, "rss_mb": rss_mb, "rss_peak_mb": hwm_mb, "idle_cpu_pct": idle_cpu,
            "idle_wakeups_per_s": idle_wakeups}


def main() -> None:
    p = parser("Ingest throughput vs a bare paho subscriber, and steady-load CPU/RSS.",
               out=REPO / "bench" / "out" / "ingest")
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--assets", type=int, default=50)
    p.add_argument("--signals", type=int, default=10)
    p.add_argument("--steady-s", type=float, default=30.0)
    p.add_argument("--reps", type=int, default=2)
    a = p.parse_args()
    logs.configure("error", "json")
    print(f"machine: {machine()}")
    with LocalBroker(persistence=False) as b, tempfile.TemporaryDirectory() as tmp:
        results: dict[int, tuple[float, float]] = {}
        for k in dict.fromkeys((a.signals, 1)):  # the configured width, and one signal per message
            bare, daemon = [], []
            for rep in range(a.reps):  # interleaved, so machine noise hits both alike
                bare.append(bare_rate(b, a.messages, a.assets, k, f"bare{k}x{rep}"))
                daemon.append(daemon_rate(b, a.messages, a.assets, k, f"daemon{k}x{rep}", Path(tmp)))
                print(f"{k} signal(s)/message, rep {rep}: bare paho {bare[-1]:,.0f} msg/s   daemon "
                      f"{daemon[-1]:,.0f} msg/s ({daemon[-1] * k:,.0f} samples/s)   ratio {daemon[-1] / bare[-1]:.2f}",
                      flush=True)
            results[k] = (max(bare), max(daemon))
        bare_best, daemon_best = results[a.signals]
        bare_1, daemon_1 = results[1]
        steady = steady_and_idle(b, a.steady_s, Path(tmp))
    ratio = daemon_best / bare_best
    print(f"\nmessages of {a.signals} signals: bare paho {bare_best:,.0f}/s, daemon {daemon_best:,.0f}/s "
          f"(every sample through the detectors), ratio {ratio:.2f} (target >= 0.8)")
    print(f"messages of 1 signal: bare paho {bare_1:,.0f}/s, daemon {daemon_1:,.0f}/s, ratio {daemon_1 / bare_1:.2f}")
    print(f"steady 200 assets x 10 signals at 1 Hz: {steady['steady_cpu_pct']:.1f} % of one core (target <= 10), "
          f"RSS {steady['rss_mb']:.0f} MB (target <= 80)")
    print(f"idle: {steady['idle_cpu_pct']:.2f} % CPU, {steady['idle_wakeups_per_s']:.1f} wake-ups/s (all threads)")
    out = {"bare_per_s": round(bare_best, 1), "daemon_per_s": round(daemon_best, 1), "ratio": round(ratio, 3),
           "steady_cpu_pct": round(steady["steady_cpu_pct"], 2), "rss_mb": round(steady["rss_mb"], 1),
           "idle_cpu_pct": round(steady["idle_cpu_pct"], 3),
           "idle_wakeups_per_s": round(steady["idle_wakeups_per_s"], 1),
           "ratio_1_signal": round(daemon_1 / bare_1, 3), "bare_1_signal_per_s": round(bare_1, 1),
           "daemon_1_signal_per_s": round(daemon_1, 1), "signals_per_message": a.signals,
           "messages": a.messages}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ingest.json").write_text(json.dumps(out, indent=2))
    final_json(out)


if __name__ == "__main__":
    main()
