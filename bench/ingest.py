"""Ingest cost: the daemon's message rate against a bare paho subscriber, and its CPU/RSS at plant load.

(a) bare: a paho-mqtt subscriber that only counts messages; (b) the daemon (App, default detectors, no
model) counting samples fully processed by the detectors; both rates are in messages/s (a daemon message
counts once all its K samples went through the detectors), for K = --signals and for K = 1. Both drain
the SAME backlog: a publisher in a
separate process loads N messages into the broker for the subscriber's persistent session while it is
offline, then the subscriber connects and we time the drain. That measures the consumer alone, not the
publisher. Beside the rates, the CPU time this process spent per message during each drain (all threads; less
noisy than the rates on a shared machine). The bare subscriber is stock paho with its defaults (MQTT 3.1.1);
the daemon runs its shipped default, MQTT 5 (`--protocol 3.1.1` runs it on 3.1.1 instead). A third drain runs
the daemon with every detector switched off: the cost of the design before detection (MQTT session, decoding,
queue, the engine's bookkeeping), i.e. the best ratio any detector set could reach in it.

Then (c) the daemon as its own process (as under systemd) at a steady 200 assets x 10 signals at 1 Hz: CPU %
of one core and RSS, first for --steady-s seconds after start (windows still short), then again once the
detector windows are full: --fill rounds of every series are first published at --fill-rate messages/s, below
the daemon's drain rate so that no backlog inflates the figure. With the default 450 every window is full (z-score
and EWMA 240 samples, spike 120, multivariate 400 rows, novelty warm-up 250) except the multivariate calibration
ring (about half of its 1,000 values; full after ~1,100 rows, ~18 min at 1 Hz: ~0.8 MB more at 200 assets).
rss_mb is the full-window figure. Beside the daemon, in its own process, a bare paho subscriber (stock, QoS 1)
receives the same messages: its CPU % is the MQTT client's own share of the budget (bare_steady_cpu_pct).
(d) idle: CPU and wake-ups per second with no telemetry.

    python bench/ingest.py [--messages 50000] [--assets 50] [--signals 10] [--steady-s 30] [--reps 2]
                           [--fill 450] [--fill-rate 2000] [--protocol 5] [--compiled]
Ends with one JSON line: bare_per_s, daemon_per_s, ratio, steady_cpu_pct, rss_mb (+ details, among them
ratio_no_detectors).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as paho
from _common import REPO, final_json, machine, parser
from paho.mqtt.enums import CallbackAPIVersion

from edgeslm import accel, logs
from edgeslm.app import App
from edgeslm.mqtt import v5props
from edgeslm.mqtt.localbroker import LocalBroker
from edgeslm.settings import DetectSettings, load_settings

# Every detector switched off: what the daemon spends on a message before any detection (its MQTT session,
# decoding, the queue, the engine's per-sample bookkeeping and the alarm stage). Measured beside the default
# set, it shows how much of the gap to bare paho is detection and how much the design's fixed cost.
NO_DETECTORS = {name: {"enabled": False} for name, f in DetectSettings.model_fields.items()
                if f.annotation is not None and "enabled" in getattr(f.annotation, "model_fields", {})}

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

# The MQTT client's own cost at the steady load: stock paho with its defaults, subscribed at QoS 1 like the
# daemon, counting messages, in its own process beside the daemon (the same messages reach both).
BARE_SUBSCRIBER = r"""
import sys
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = 0
def on_message(c, u, m):
    global n
    n += 1
c = paho.Client(CallbackAPIVersion.VERSION2)
c.on_message = on_message
c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
c.connect(host, port)
c.loop_forever()
"""


def publish(host: str, port: int, n: int, assets: int, signals: int, prefix: str, rate: float = 0.0
            ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, host, str(port), str(n), str(assets), str(signals),
                             str(rate), prefix], stdout=subprocess.PIPE, text=True)


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bare_rate(b: LocalBroker, n: int, assets: int, signals: int, prefix: str) -> tuple[float, float]:
    """A paho subscriber that only counts: connect once to create the session, go offline, load, drain.

    Returns (messages/s, CPU µs of this process per message) over the drain. Stock paho: the daemon's MQTT 5
    property module (edgeslm/mqtt/v5props.py), installed process-wide by a daemon run before, is taken out
    first (3.1.1 decodes no properties, so it would not change the figure, but the baseline is plain paho)."""
    v5props.uninstall()
    count = 0
    first = last = cpu0 = cpu1 = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
        nonlocal count, first, last, cpu0, cpu1
        if count == 0:
            first = time.perf_counter()
            cpu0 = own_cpu_s()
        count += 1
        last = time.perf_counter()
        if count >= n:
            cpu1 = own_cpu_s()
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
    return (n - 1) / (last - first), 1e6 * (cpu1 - cpu0) / (n - 1)


def daemon_rate(b: LocalBroker, n: int, assets: int, signals: int, prefix: str, state: Path,
                protocol: str = "5", detect: dict[str, Any] | None = None) -> tuple[float, float]:
    """The daemon (App) drains the same kind of backlog: (messages/s, CPU µs of this process per message).
    `detect`: overrides of the [detect] settings (default: the shipped detector set)."""
    tag = f"{time.time_ns()}"
    s = load_settings(None, gateway={"name": f"bench-{tag}", "state_dir": str(state / tag)},
                      mqtt={"host": b.host, "port": b.port, "client_id": f"bench-daemon-{tag}",
                            "protocol": protocol},
                      subscriptions=[{"topic": f"{prefix}/+/telemetry", "json": {"asset": "topic:1"}}],
                      advice={"model_dir": None}, logging={"level": "error"},
                      # The whole backlog fits the inbound queue: this measures processing speed. With the
                      # default bound the queue sheds the oldest while paho reads faster than detection.
                      ingest={"queue_size": n + 1}, **({"detect": detect} if detect else {}))
    app = App(s)
    app.start()  # creates the persistent session and subscription
    assert app.link is not None and app.link.wait_connected(10)
    time.sleep(0.5)
    app.stop()
    publish(b.host, b.port, n, assets, signals, prefix).wait()
    app = App(s)
    want = n * signals
    first = cpu0 = 0.0
    app.start()
    assert app.pipeline is not None
    deadline = time.monotonic() + 300
    pipe = app.pipeline
    # The clock starts at the first message in (queued or already scored), as the bare subscriber's does:
    # starting it at the first scored sample would leave out what paho received while the first batch waited.
    while pipe.processed_samples < want and time.monotonic() < deadline:
        if not first and (pipe.queue_depth() or pipe.processed_samples):
            first = time.perf_counter()
            cpu0 = own_cpu_s()
        time.sleep(0.002)
    last = time.perf_counter()
    cpu1 = own_cpu_s()
    got = pipe.processed_samples
    app.stop()
    assert got >= want, f"daemon processed {got}/{want} samples"
    # messages/s, comparable with the bare subscriber's; the CPU includes this polling loop (a wake-up per 2 ms)
    return (n - 1) / (last - first), 1e6 * (cpu1 - cpu0) / (n - 1)


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


def steady_phase(b: LocalBroker, pid: int, seconds: float, bare_pid: int) -> tuple[float, float, float]:
    """200 assets x 10 signals at 1 Hz for 5 s + `seconds`; over the last `seconds`: (CPU % of one core, RSS MB)
    of the daemon, and the CPU % of the bare paho subscriber that receives the same messages meanwhile."""
    pub = publish(b.host, b.port, int(200 * (seconds + 5)), 200, 10, "steady", rate=200.0)
    time.sleep(5.0)  # the new rate settles (and, at start, the detectors warm up)
    c0, b0, t0 = proc_cpu_s(pid), proc_cpu_s(bare_pid), time.monotonic()
    time.sleep(seconds)
    c1, b1, el = proc_cpu_s(pid), proc_cpu_s(bare_pid), time.monotonic() - t0
    rss_mb = proc_status(pid, "VmRSS") / 1024
    pub.wait()
    return 100 * (c1 - c0) / el, rss_mb, 100 * (b1 - b0) / el


def steady_and_idle(b: LocalBroker, seconds: float, state: Path, fill: int, fill_rate: float,
                    pythonpath: Path | None = None) -> dict[str, float]:
    """The daemon as its own process (as under systemd): 200 assets x 10 signals at 1 Hz, just after start and
    with every window full, then idle. `pythonpath`: import edgeslm from there (a compiled build)."""
    state.mkdir(parents=True, exist_ok=True)
    cfg = state / "steady.toml"
    cfg.write_text(f"""
[gateway]
name = "bench-steady{'-compiled' if pythonpath else ''}"
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
    env = dict(os.environ, PYTHONPATH=str(pythonpath)) if pythonpath else None
    # `-m` puts the working directory first on sys.path: from the repo root that is the pure checkout.
    cwd = str(pythonpath) if pythonpath else None
    if pythonpath:
        check = subprocess.run([sys.executable, "-c", "from edgeslm import accel; print(accel.compiled_in_use())"],
                               env=env, cwd=cwd, capture_output=True, text=True, check=True)
        assert check.stdout.strip() == "True", f"the compiled build is not what runs: {check.stdout}{check.stderr}"
    d = subprocess.Popen([sys.executable, "-m", "edgeslm", "run", "--config", str(cfg)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    bare = subprocess.Popen([sys.executable, "-c", BARE_SUBSCRIBER, b.host, str(b.port), "steady/+/telemetry"])
    try:
        time.sleep(3.0)  # start-up
        out = {"rss_start_mb": proc_status(d.pid, "VmRSS") / 1024}
        out["steady_cold_cpu_pct"], out["rss_cold_mb"], out["bare_steady_cold_cpu_pct"] = steady_phase(
            b, d.pid, seconds, bare.pid)
        if fill:
            # Every series' windows filled (z-score/EWMA 240 samples, multivariate 400 rows), faster than 1 Hz
            # but slower than the daemon drains, so that no queued backlog is in the RSS.
            publish(b.host, b.port, 200 * fill, 200, 10, "steady", rate=fill_rate).wait()
            time.sleep(3.0)
            out["steady_cpu_pct"], out["rss_mb"], out["bare_steady_cpu_pct"] = steady_phase(
                b, d.pid, seconds, bare.pid)
        else:
            out["steady_cpu_pct"], out["rss_mb"] = out["steady_cold_cpu_pct"], out["rss_cold_mb"]
            out["bare_steady_cpu_pct"] = out["bare_steady_cold_cpu_pct"]
        out["rss_peak_mb"] = proc_status(d.pid, "VmHWM") / 1024
        out["rss_anon_mb"] = proc_status(d.pid, "RssAnon") / 1024
        out["bare_rss_mb"] = proc_status(bare.pid, "VmRSS") / 1024
        time.sleep(2.0)
        c0, t0, w0 = proc_cpu_s(d.pid), time.monotonic(), wakeups(d.pid)
        time.sleep(10.0)
        idle_s = time.monotonic() - t0
        out["idle_cpu_pct"] = 100 * (proc_cpu_s(d.pid) - c0) / idle_s
        out["idle_wakeups_per_s"] = (wakeups(d.pid) - w0) / idle_s
    finally:
        bare.terminate()
        d.terminate()
        d.wait(30)
        bare.wait(30)
    return out


def main() -> None:
    p = parser("Ingest throughput vs a bare paho subscriber, and steady-load CPU/RSS.",
               out=REPO / "bench" / "out" / "ingest")
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--assets", type=int, default=50)
    p.add_argument("--signals", type=int, default=10)
    p.add_argument("--steady-s", type=float, default=30.0)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--fill", type=int, default=450, help="rounds published to fill every window before the "
                   "full-window steady phase (0: skip it)")
    p.add_argument("--fill-rate", type=float, default=2000.0, help="messages/s while filling (default 2000)")
    p.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="the daemon's MQTT protocol "
                   "(default 5, its shipped default; the bare subscriber is paho's default, 3.1.1)")
    p.add_argument("--compiled", action="store_true", help="also run the steady phases on the mypyc-compiled "
                   "detectors (edgeslm/accel.py; needs mypy and a C compiler)")
    a = p.parse_args()
    logs.configure("error", "json")
    print(f"machine: {machine()}")
    with LocalBroker(persistence=False) as b, tempfile.TemporaryDirectory() as tmp:
        results: dict[int, dict[str, float]] = {}
        for k in dict.fromkeys((a.signals, 1)):  # the configured width, and one signal per message
            bare, daemon, floor = [], [], []
            for rep in range(a.reps):  # interleaved, so machine noise hits all alike
                bare.append(bare_rate(b, a.messages, a.assets, k, f"bare{k}x{rep}"))
                daemon.append(daemon_rate(b, a.messages, a.assets, k, f"daemon{k}x{rep}", Path(tmp), a.protocol))
                floor.append(daemon_rate(b, a.messages, a.assets, k, f"floor{k}x{rep}", Path(tmp), a.protocol,
                                         detect=NO_DETECTORS))
                (br, bc), (dr, dc), (fr, fc) = bare[-1], daemon[-1], floor[-1]
                print(f"{k} signal(s)/message, rep {rep}: bare paho {br:,.0f} msg/s ({bc:.0f} µs CPU/msg)   "
                      f"daemon {dr:,.0f} msg/s ({dr * k:,.0f} samples/s, {dc:.0f} µs CPU/msg), ratio {dr / br:.2f}   "
                      f"no detectors {fr:,.0f} msg/s ({fc:.0f} µs CPU/msg), ratio {fr / br:.2f}", flush=True)
            results[k] = {"bare": max(r for r, _ in bare), "daemon": max(r for r, _ in daemon),
                          "floor": max(r for r, _ in floor), "bare_cpu": min(c for _, c in bare),
                          "daemon_cpu": min(c for _, c in daemon), "floor_cpu": min(c for _, c in floor)}
        steady = steady_and_idle(b, a.steady_s, Path(tmp), a.fill, a.fill_rate)
        if a.compiled:
            root = accel.build(Path(tmp) / "compiled")
            comp = steady_and_idle(b, a.steady_s, Path(tmp) / "c", a.fill, a.fill_rate, pythonpath=root)
            steady |= {"steady_cpu_pct_compiled": comp["steady_cpu_pct"], "rss_mb_compiled": comp["rss_mb"]}
    r, r1 = results[a.signals], results[1]
    ratio = r["daemon"] / r["bare"]
    print(f"\nmessages of {a.signals} signals: bare paho {r['bare']:,.0f}/s, daemon {r['daemon']:,.0f}/s "
          f"(every sample through the detectors), ratio {ratio:.2f} (target >= 0.8); CPU per message "
          f"{r['bare_cpu']:.0f} vs {r['daemon_cpu']:.0f} µs")
    print(f"messages of 1 signal: bare paho {r1['bare']:,.0f}/s, daemon {r1['daemon']:,.0f}/s, ratio "
          f"{r1['daemon'] / r1['bare']:.2f}; CPU per message {r1['bare_cpu']:.0f} vs {r1['daemon_cpu']:.0f} µs")
    print(f"the daemon with every detector off (its MQTT session, decoding, queue and engine bookkeeping: the "
          f"ceiling of this design): {a.signals} signals {r['floor']:,.0f}/s, ratio {r['floor'] / r['bare']:.2f} "
          f"({r['floor_cpu']:.0f} µs CPU/msg); 1 signal {r1['floor']:,.0f}/s, ratio {r1['floor'] / r1['bare']:.2f} "
          f"({r1['floor_cpu']:.0f} µs)")
    print(f"steady 200 assets x 10 signals at 1 Hz, after start: {steady['steady_cold_cpu_pct']:.1f} % of one core, "
          f"RSS {steady['rss_cold_mb']:.0f} MB (at start {steady['rss_start_mb']:.0f} MB)")
    print(f"steady, every window full: {steady['steady_cpu_pct']:.1f} % of one core (target <= 10), "
          f"RSS {steady['rss_mb']:.0f} MB (target <= 80; anonymous {steady['rss_anon_mb']:.0f} MB, peak "
          f"{steady['rss_peak_mb']:.0f} MB)")
    print(f"a bare paho subscriber receiving the same messages meanwhile: {steady['bare_steady_cpu_pct']:.1f} % of "
          f"one core (after start {steady['bare_steady_cold_cpu_pct']:.1f} %), RSS {steady['bare_rss_mb']:.0f} MB: "
          f"the daemon costs {steady['steady_cpu_pct'] - steady['bare_steady_cpu_pct']:.1f} points more")
    if a.compiled:
        print(f"the same, detectors compiled (mypyc): {steady['steady_cpu_pct_compiled']:.1f} % of one core, RSS "
              f"{steady['rss_mb_compiled']:.0f} MB")
    print(f"idle: {steady['idle_cpu_pct']:.2f} % CPU, {steady['idle_wakeups_per_s']:.1f} wake-ups/s (all threads)")
    out = {"bare_per_s": round(r["bare"], 1), "daemon_per_s": round(r["daemon"], 1), "ratio": round(ratio, 3),
           "steady_cpu_pct": round(steady["steady_cpu_pct"], 2), "rss_mb": round(steady["rss_mb"], 1),
           "bare_cpu_us_per_msg": round(r["bare_cpu"], 1), "daemon_cpu_us_per_msg": round(r["daemon_cpu"], 1),
           "ratio_1_signal": round(r1["daemon"] / r1["bare"], 3), "bare_1_signal_per_s": round(r1["bare"], 1),
           "daemon_1_signal_per_s": round(r1["daemon"], 1),
           "bare_1_signal_cpu_us_per_msg": round(r1["bare_cpu"], 1),
           "daemon_1_signal_cpu_us_per_msg": round(r1["daemon_cpu"], 1),
           "no_detectors_per_s": round(r["floor"], 1), "ratio_no_detectors": round(r["floor"] / r["bare"], 3),
           "no_detectors_cpu_us_per_msg": round(r["floor_cpu"], 1),
           "ratio_no_detectors_1_signal": round(r1["floor"] / r1["bare"], 3),
           "no_detectors_1_signal_cpu_us_per_msg": round(r1["floor_cpu"], 1),
           **{k: round(v, 2) for k, v in steady.items() if k not in ("steady_cpu_pct", "rss_mb")},
           "signals_per_message": a.signals, "messages": a.messages, "protocol": a.protocol}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ingest.json").write_text(json.dumps(out, indent=2))
    final_json(out)


if __name__ == "__main__":
    main()
