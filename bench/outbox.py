"""Outbox throughput and write cost: durable enqueue rate, drain rate to a local mosquitto, bytes written.

    python bench/outbox.py [--messages 20000] [--producers 16] [--out DIR] [--kill-seeds N]

(a) enqueue: P producer threads call put() (each waits for its commit: WAL, synchronous=FULL, group commit);
    also one producer alone, blocking (bound by fsync latency) and pipelined with put_async in bursts of 64.
    The fsync latency of the disk is probed first: the rates scale with it.
(b) drain, live: a queue filled just now is drained to mosquitto at QoS 1
    (delete on PUBACK). (c) drain, backlog: the same, flagged historical (JSON rewritten per message), with
    the replay rate limit lifted so the cost of the path is measured. (d) bytes actually written to disk per
    1,000 messages over a whole life (enqueue, deliver/delete, close) from /proc/self/io write_bytes, and the
    write amplification against payload bytes. --kill-seeds N runs the kill -9 fault loop N times.
Ends with one JSON line: enqueue_per_s, drain_per_s, bytes_written_per_1k.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import structlog  # noqa: E402

from edgeslm.mqtt.client import MqttLink  # noqa: E402
from edgeslm.mqtt.localbroker import LocalBroker  # noqa: E402
from edgeslm.outbox import Forwarder, MessageClass, Outbox  # noqa: E402
from edgeslm.settings import Settings, load_settings  # noqa: E402


def write_bytes() -> int:
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def alert_payload(rng: random.Random, i: int) -> dict[str, Any]:
    """About the size of a real alert (~450 bytes of JSON)."""
    return {"alert_id": f"ep-{i // 5}", "ts": "2026-01-01T00:00:00.000Z", "site": "plant-1", "gateway": "gw-1",
            "asset": f"pump-{rng.randrange(50)}", "state": "raised", "severity": "high",
            "signals": ["vibration_rms", "bearing_temp"], "detectors": ["robust_zscore", "cusum"],
            "evidence": {"window": {"mean": rng.random(), "std": rng.random(), "n": 120},
                         "baseline": {"mean": rng.random(), "std": rng.random()},
                         "contributing": [{"signal": "vibration_rms", "score": rng.random()}]},
            "advice_status": "pending"}


def settings(state: Path, broker: LocalBroker, **outbox: Any) -> Settings:
    return load_settings(None, subscriptions=[{"topic": "unused/#"}], gateway={"state_dir": str(state)},
                         mqtt={"host": broker.host, "port": broker.port, "client_id": f"bench-{time.time_ns()}"},
                         outbox={"min_free_disk_mb": 0, "max_rows": 1_000_000, "max_bytes": 1 << 30, **outbox})


def fsync_ms(where: Path, rounds: int = 100) -> float:
    """Median latency of a 4 KiB write + fsync in `where`: what one commit costs at least."""
    probe = where / "fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        probe.unlink()
    return sorted(times)[len(times) // 2] * 1000


def enqueue_pipelined(ob: Outbox, n: int, burst: int = 64) -> float:
    rng = random.Random(99)
    payloads = [alert_payload(rng, i) for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, burst):
        futs = [ob.put_async(f"bench/plant-1/pump-{i % 50}/alerts", payloads[i], MessageClass.ALERT)
                for i in range(start, min(n, start + burst))]
        for f in futs:
            f.result(timeout=30)
    return n / (time.perf_counter() - t0)


def enqueue(ob: Outbox, n: int, producers: int) -> float:
    rngs = [random.Random(k) for k in range(producers)]
    payloads = [[alert_payload(rngs[k], i) for i in range(n // producers)] for k in range(producers)]

    def run(k: int) -> None:
        for i, p in enumerate(payloads[k]):
            ob.put(f"bench/plant-1/pump-{i % 50}/alerts", p, MessageClass.ALERT)

    threads = [threading.Thread(target=run, args=(k,), name=f"bench-producer-{k}") for k in range(producers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (n // producers) * producers / (time.perf_counter() - t0)


def drain(ob: Outbox, s: Settings, timeout: float = 120.0) -> tuple[float, dict[str, Any]]:
    link = MqttLink(s)
    fwd = Forwarder(ob, link, s.outbox)
    link.start()
    if not link.wait_connected(10):
        raise SystemExit("bench: could not connect to the local mosquitto")
    queued = ob.stats()["queued"]
    t0 = time.perf_counter()
    fwd.start()
    deadline = time.monotonic() + timeout
    while ob.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    fwd.stop(5)
    link.stop()
    return queued / elapsed, fwd.stats()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--producers", type=int, default=16)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--dir", type=Path, default=None, help="where the outbox files go (default: a temp dir "
                    "under $TMPDIR; put it on the gateway's flash to measure that)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--kill-seeds", type=int, default=0, help="run the kill -9 fault loop this many times")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    logging.getLogger("paho").setLevel(logging.CRITICAL)  # MqttLink enables paho's logger; keep stdout clean
    work = Path(tempfile.mkdtemp(prefix="edgeslm-bench-outbox-", dir=args.dir))
    n = args.messages
    res: dict[str, Any] = {"fsync_ms": fsync_ms(work)}
    (work / "broker").mkdir()
    with LocalBroker(workdir=work / "broker", persistence=False) as broker:
        # (a) enqueue, several producers, and one alone
        # Live path: the queue filled moments ago is not "historical" (that is measured in (c)).
        s = settings(work, broker, inflight=args.inflight, historical_after_s=3600.0)
        ob = Outbox(work / "a.db", s.outbox)
        w0 = write_bytes()
        res["enqueue_per_s"] = enqueue(ob, n, args.producers)
        w_enqueue = write_bytes() - w0
        payload_bytes = ob.stats()["queued_bytes"]
        # (b) drain the fresh queue (live path)
        res["drain_per_s"], fstats = drain(ob, s)
        ob.close()
        w_life = write_bytes() - w0
        res["bytes_written_per_1k"] = w_life / n * 1000
        res["enqueue_bytes_per_1k"] = w_enqueue / n * 1000
        res["payload_bytes_per_1k"] = payload_bytes / n * 1000
        res["write_amplification"] = w_life / payload_bytes if payload_bytes else None
        res["drain_stats"] = fstats
        ob1 = Outbox(work / "b.db", s.outbox)
        res["enqueue_1_producer_per_s"] = enqueue(ob1, min(n, 2000), 1)
        res["enqueue_pipelined_per_s"] = enqueue_pipelined(ob1, min(n, 10_000))
        ob1.close()
        # (c) backlog replay: historical flag, rate limit lifted
        s2 = settings(work, broker, inflight=args.inflight, historical_after_s=0.0, replay_rate_per_s=1e9)
        ob2 = Outbox(work / "c.db", s2.outbox)
        enqueue(ob2, n, args.producers)
        res["drain_backlog_per_s"], _ = drain(ob2, s2)
        ob2.close()
    if args.kill_seeds:
        res["kill_seeds"] = kill_loop(args.kill_seeds, work)
    print_report(res, n, args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "outbox.json").write_text(json.dumps(res, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"enqueue_per_s": round(res["enqueue_per_s"], 1), "drain_per_s": round(res["drain_per_s"], 1),
                      "bytes_written_per_1k": round(res["bytes_written_per_1k"])}), flush=True)


def kill_loop(seeds: int, work: Path) -> dict[str, Any]:
    """kill -9 the stand-in daemon `seeds` times; every committed id must be queued or delivered."""
    from edgeslm.outbox.store import iter_queued_ids
    from tests.faults.outbox_helpers import Verifier
    from tests.faults.test_outbox_faults import _run_child
    bdir = work / "kill-broker"
    bdir.mkdir()
    db = work / "kill" / "outbox.db"
    db.parent.mkdir()
    committed: set[str] = set()
    worst_ready_ms = 0.0
    with LocalBroker(workdir=bdir) as broker, \
            Verifier(broker.host, broker.port, "k9/#", client_id="bench-verifier") as ver:
        for seed in range(seeds):
            mode = "drain" if seed % 3 == 2 else "burst"
            ids, ready_ms = _run_child(db, broker, 1000 + seed, mode, "k9")
            worst_ready_ms = max(worst_ready_ms, ready_ms)
            committed.update(ids)
            Outbox(db, load_settings(None, subscriptions=[{"topic": "x/#"}]).outbox).close()
            gone = committed - set(iter_queued_ids(db))
            if not ver.wait_for(gone, timeout=10):
                raise SystemExit(f"kill loop seed {seed}: {len(gone - ver.ids())} committed ids lost")
    return {"seeds": seeds, "committed": len(committed), "lost": 0, "worst_ready_ms": worst_ready_ms}


def print_report(res: dict[str, Any], n: int, args: argparse.Namespace) -> None:
    print(f"outbox bench: {n} messages, {args.producers} producers, inflight {args.inflight}, "
          f"{os.cpu_count()} cores {platform.machine()}, SQLite WAL synchronous=FULL")
    print(f"  disk: 4 KiB write + fsync median {res['fsync_ms']:.2f} ms")
    print(f"  enqueue (durable, group commit): {res['enqueue_per_s']:8.0f} msg/s with {args.producers} producers")
    print(f"     one producer, blocking put:   {res['enqueue_1_producer_per_s']:8.0f} msg/s (one fsync each)")
    print(f"     one producer, put_async x64:  {res['enqueue_pipelined_per_s']:8.0f} msg/s")
    print(f"  drain to mosquitto, live:        {res['drain_per_s']:8.0f} msg/s")
    print(f"  drain, historical backlog:       {res['drain_backlog_per_s']:8.0f} msg/s (rate limit lifted)")
    print(f"  disk writes per 1,000 messages:  {res['bytes_written_per_1k'] / 1024:8.0f} KiB whole life, "
          f"{res['enqueue_bytes_per_1k'] / 1024:.0f} KiB enqueue only; payload {res['payload_bytes_per_1k'] / 1024:.0f}"
          f" KiB -> write amplification {res['write_amplification']:.1f}x")
    if "kill_seeds" in res:
        k = res["kill_seeds"]
        print(f"  kill -9 loop: {k['seeds']} seeds, {k['committed']} committed ids, lost {k['lost']}, "
              f"worst ready {k['worst_ready_ms']:.0f} ms")


if __name__ == "__main__":
    main()
