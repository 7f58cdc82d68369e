"""Outbox fault tests: a real mosquitto stopped, killed and frozen; the daemon killed; disk full; bad files.

A seeded generator is the reference for what was produced; a verifier with a persistent session records
what arrived. Each test is bounded in time; the many-seed kill loop lives in bench/outbox.py --kill-seeds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeslm.mqtt.client import MqttLink
from edgeslm.mqtt.localbroker import LocalBroker
from edgeslm.outbox import Forwarder, MessageClass, Outbox, OutboxError, OutboxFull, QueuedRow
from edgeslm.outbox.store import iter_queued_ids
from edgeslm.settings import OutboxSettings, Settings
from tests.faults.fake_broker import FakeBroker
from tests.faults.outbox_helpers import Verifier, identity_holds, make_settings

pytestmark = pytest.mark.broker

CHILD = Path(__file__).with_name("outbox_child.py")
KEEPALIVE_S = 2
WINDOW = 8


def short_keepalive(s: Settings, keepalive: int = KEEPALIVE_S) -> Settings:
    # The settings floor is 5 s for real deployments; tests use 2 s to stay fast (model_copy skips validation).
    return s.model_copy(update={"mqtt": s.mqtt.model_copy(update={"keepalive_s": keepalive})})


class Daemon:
    """Outbox + MqttLink + Forwarder as the daemon wires them, plus a seeded producer thread."""

    def __init__(self, tmp_path: Path, broker: LocalBroker, name: str, **outbox: Any) -> None:
        s = make_settings(tmp_path, broker.host, broker.port, client_id=f"daemon-{name}",
                          outbox={"inflight": WINDOW, "ack_timeout_s": 1.5, **outbox})
        self.s = short_keepalive(s)
        self.prefix = name
        self.ob = Outbox(tmp_path / "outbox.db", self.s.outbox)
        self.link = MqttLink(self.s)
        self.acked: dict[str, float] = {}  # id -> monotonic time of its PUBACK
        self.fwd = Forwarder(self.ob, self.link, self.s.outbox, on_delivered=self._delivered)
        self.produced: list[str] = []
        self._stop = threading.Event()
        self._producer: threading.Thread | None = None

    def _delivered(self, row: QueuedRow) -> None:
        self.acked.setdefault(row.id, time.monotonic())

    def start(self) -> Daemon:
        self.fwd.start()
        self.link.start()
        assert self.link.wait_connected(10)
        return self

    def produce(self, seed: int, rate: float = 300.0) -> None:
        rng = random.Random(seed)

        def run() -> None:
            while not self._stop.is_set():
                topic = f"{self.prefix}/t{rng.randrange(3)}"
                self.produced.append(self.ob.put(topic, {"v": rng.random()}, rng.choice(
                    [MessageClass.ALERT, MessageClass.ADVICE])))
                self._stop.wait(rng.expovariate(rate))

        self._producer = threading.Thread(target=run, name="test-producer", daemon=True)
        self._producer.start()

    def stop_producing(self) -> None:
        self._stop.set()
        if self._producer:
            self._producer.join(5)

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ob.stats()["queued"] == 0:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.stop_producing()
        self.fwd.stop(3)
        self.link.stop()
        self.ob.close()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def make(broker: LocalBroker, name: str, **outbox: Any) -> Daemon:
        d = Daemon(tmp_path, broker, name, **outbox)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


# --- 1. broker stopped, then restarted ------------------------------------------------------------------
def test_broker_stopped_and_restarted_loses_nothing_keeps_order_and_bounds_duplicates(
        own_broker: LocalBroker, daemon_factory: Any) -> None:
    with Verifier(own_broker.host, own_broker.port, "stop/#", client_id="verifier-stop") as ver:
        d = daemon_factory(own_broker, "stop").start()
        d.produce(seed=1)
        time.sleep(1.0)
        own_broker.stop()  # SIGTERM: mosquitto saves the verifier's session and queue
        time.sleep(2.0)
        own_broker.start()
        time.sleep(1.0)
        d.stop_producing()
        assert d.wait_drained(20), d.ob.stats()
        assert ver.sessions_present[1:] == [True], "broker lost the verifier's session: test is void"
        produced = set(d.produced)
        assert ver.wait_for(produced, timeout=15), f"missing {len(produced - ver.ids())} of {len(produced)}"
        ver.assert_fifo_per_topic()
        print(f"broker restart: {len(produced)} messages, {ver.duplicates()} duplicates (window {WINDOW})")
        assert ver.duplicates() <= WINDOW, ver.duplicates()
        st = d.ob.stats()
        assert st["delivered"] == st["produced"] == len(produced) and identity_holds(st)
        assert d.fwd.counts["resets"] >= 1


# --- 2. broker killed (SIGKILL) and frozen (SIGSTOP) ------------------------------------------------------
def test_broker_sigkill_loses_nothing_that_was_not_acknowledged(own_broker: LocalBroker,
                                                                  daemon_factory: Any) -> None:
    with Verifier(own_broker.host, own_broker.port, "kill/#", client_id="verifier-kill") as ver:
        d = daemon_factory(own_broker, "kill").start()
        d.produce(seed=2)
        time.sleep(2.0)  # > mosquitto's autosave_interval: the verifier's session must survive the SIGKILL
        own_broker.kill()
        killed_at = time.monotonic()
        time.sleep(1.5)
        own_broker.start()
        time.sleep(1.0)
        d.stop_producing()
        assert d.wait_drained(20), d.ob.stats()
        # The broker acknowledged (and may have lost) what it PUBACKed before SIGKILL; everything else
        # must arrive.
        must = {i for i in d.produced if d.acked.get(i, float("inf")) > killed_at}
        assert ver.sessions_present[1:] == [True], "broker lost the verifier's session: test is void"
        assert must and ver.wait_for(must, timeout=15), f"missing {len(must - ver.ids())}"
        ver.assert_fifo_per_topic(gap_free=False)
        assert identity_holds(d.ob.stats())


def test_frozen_broker_is_detected_within_one_and_a_half_keepalives_and_nothing_unacked_is_lost(
        own_broker: LocalBroker, daemon_factory: Any) -> None:
    with Verifier(own_broker.host, own_broker.port, "freeze/#", client_id="verifier-freeze") as ver:
        d = daemon_factory(own_broker, "freeze").start()
        d.produce(seed=3)
        time.sleep(1.0)
        own_broker.freeze()
        frozen_at = time.monotonic()
        try:
            stalled_after = disconnected_after = None
            while time.monotonic() - frozen_at < 4 * KEEPALIVE_S:
                if stalled_after is None and d.fwd.stalled:
                    stalled_after = time.monotonic() - frozen_at
                if disconnected_after is None and not d.link.connected.is_set():
                    disconnected_after = time.monotonic() - frozen_at
                if stalled_after is not None and disconnected_after is not None:
                    break
                time.sleep(0.02)
        finally:
            own_broker.thaw()
        print(f"frozen broker: stall detected after {stalled_after} s, paho disconnect after "
              f"{disconnected_after} s (keepalive {KEEPALIVE_S} s)")
        assert stalled_after is not None and stalled_after <= 1.5 * KEEPALIVE_S
        assert disconnected_after is not None  # paho's own PINGREQ timeout (up to ~2 x keepalive)
        d.stop_producing()
        assert d.wait_drained(20), d.ob.stats()
        must = {i for i in d.produced if d.acked.get(i, float("inf")) > frozen_at}
        assert ver.wait_for(set(d.produced), timeout=15), f"missing {len(set(d.produced) - ver.ids())}"
        assert must
        ver.assert_fifo_per_topic()
        assert identity_holds(d.ob.stats())


# --- 3. kill -9 of the daemon ---------------------------------------------------------------------
def _run_child(db: Path, broker: LocalBroker, seed: int, mode: str, prefix: str) -> tuple[list[str], float]:
    """Start the child, kill -9 it at a seeded moment; return the ids it reported committed, and READY ms."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(db), broker.host, str(broker.port), str(seed), mode,
                             prefix], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()
    trigger = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if not line.endswith("\n"):
                break  # cut by the kill: not a complete report
            lines.append(line.strip())
            if line.startswith("READY"):
                ready.set()
            if line.startswith("DRAINING"):
                trigger.set()

    reader = threading.Thread(target=read, name="child-reader", daemon=True)
    reader.start()
    try:
        assert ready.wait(10), "child not ready within 10 s"
        if mode == "drain":
            assert trigger.wait(20), "child never started draining"
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            time.sleep(rng.uniform(0.15, 0.5))
    finally:
        proc.kill()
        proc.wait(5)
        reader.join(5)
    ready_ms = float(next(x for x in lines if x.startswith("READY")).split()[1])
    return [x.split()[1] for x in lines if x.startswith("ID ")], ready_ms


@pytest.mark.parametrize("seeds", [range(20), pytest.param(range(20, 120), marks=pytest.mark.slow)],
                         ids=["20-seeds", "100-more-seeds"])
def test_kill_9_during_bursts_and_drain_loses_no_committed_record(tmp_path: Path, own_broker: LocalBroker,
                                                                   seeds: range, request: pytest.FixtureRequest
                                                                   ) -> None:
    if len(seeds) > 20 and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long variant (~4 min): run with -m slow, or bench/outbox.py --kill-seeds N")
    db = tmp_path / "outbox.db"
    committed: set[str] = set()
    with Verifier(own_broker.host, own_broker.port, "k9/#", client_id="verifier-k9") as ver:
        for seed in seeds:
            mode = "drain" if seed % 3 == 2 else "burst"
            ids, ready_ms = _run_child(db, own_broker, seed, mode, "k9")
            assert ready_ms < 10_000
            committed.update(ids)
            t0 = time.monotonic()
            ob = Outbox(db, OutboxSettings(min_free_disk_mb=0))  # recovery after kill -9 (WAL replay)
            reopen_s = time.monotonic() - t0
            st = ob.stats()
            ob.close()
            assert reopen_s < 10 and ob.recovered_from is None
            assert identity_holds(st), st
            queued = set(iter_queued_ids(db))
            gone = committed - queued  # deleted only after a PUBACK: the verifier must have it
            assert ver.wait_for(gone, timeout=10), (
                f"seed {seed} ({mode}): {len(gone - ver.ids())} committed ids neither queued nor delivered")
        assert len(committed) > 1000


# --- 4. disk full -----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=False,
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs (needs root / CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=10)


def test_disk_full_acknowledges_nothing_unstored_and_resumes_by_itself(small_disk: Path) -> None:
    db = small_disk / "outbox.db"
    ob = Outbox(db, OutboxSettings(min_free_disk_mb=0))
    stored: list[str] = []
    failures = 0
    blob = "x" * 2000
    try:
        for i in range(2000):
            try:
                stored.append(ob.put("full/t", {"i": i, "blob": blob}, MessageClass.ALERT))
            except OutboxFull as e:
                assert not e.accounted
                failures += 1
                if failures >= 20:
                    break
        assert failures >= 20 and stored, "the 1 MiB disk never filled"
        assert ob.stats()["unstored"] >= 20 and identity_holds(ob.stats())
        r = subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=False, capture_output=True,
                           timeout=10)
        assert r.returncode == 0, r.stderr
        stored.append(ob.put("full/t", {"i": -1}, MessageClass.ALERT))  # no restart needed
    finally:
        ob.close()
    assert list(iter_queued_ids(db)) == stored  # every acknowledged put is on disk, in order; nothing else
    st = Outbox(db, OutboxSettings(min_free_disk_mb=0))
    try:
        assert st.stats()["queued"] == len(stored) and identity_holds(st.stats())
    finally:
        st.close()


def _fill_disk(where: Path) -> Path:
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_at_start_never_moves_the_database_aside(small_disk: Path) -> None:
    db = small_disk / "outbox.db"
    ids = _filled_db(db, 20)
    filler = _fill_disk(small_disk)
    with pytest.raises(OutboxError, match="disk full"):  # gives up after open_retry_s, with the reason
        Outbox(db, OutboxSettings(min_free_disk_mb=0, open_retry_s=1.0))
    assert not list(small_disk.glob("outbox.db.corrupt-*"))
    threading.Timer(1.5, filler.unlink).start()  # space comes back while the daemon is starting
    ob = Outbox(db, OutboxSettings(min_free_disk_mb=0, open_retry_s=20.0))
    try:
        assert ob.recovered_from is None and list(iter_queued_ids(db)) == ids
        ob.put("full/t", {"i": -1}, MessageClass.ALERT)
    finally:
        ob.close()


def test_below_the_free_disk_floor_new_alerts_replace_status_and_advice(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True, timeout=10)
    ob = Outbox(small_disk / "outbox.db", OutboxSettings(min_free_disk_mb=2, coalesce_status=False))
    blob = "x" * 2000
    try:
        for i in range(600):
            ob.put(f"floor/s{i % 50}", {"blob": blob}, MessageClass.STATUS if i % 2 else MessageClass.ADVICE)
        st = ob.stats()
        assert st["dropped_by"].get("status", {}).get("disk_low", 0) > 0
        for i in range(100):
            ob.put("floor/a", {"i": i, "blob": blob}, MessageClass.ALERT)  # never refused: lower classes go
        st = ob.stats()
        assert st["dropped_by"].get("alert") is None and identity_holds(st)
    finally:
        ob.close()


# --- 5. corrupt, truncated, empty, read-only database, deleted -wal ---------------------------------------
def _filled_db(path: Path, n: int = 500) -> list[str]:
    with Outbox(path, OutboxSettings(min_free_disk_mb=0)) as ob:
        return [ob.put("c/t", {"i": i, "pad": "p" * 200}, MessageClass.ALERT) for i in range(n)]


def _assert_moved_aside_and_fresh(path: Path, original: bytes) -> None:
    ob = Outbox(path, OutboxSettings(min_free_disk_mb=0))
    try:
        assert ob.recovered_from is not None and ob.recovered_from.name.startswith("outbox.db.corrupt-")
        assert ob.recovered_from.read_bytes() == original  # moved, never deleted or changed
        assert ob.stats()["produced"] == 0
        ob.put("c/t", {}, MessageClass.ALERT)
    finally:
        ob.close()
    with Outbox(path, OutboxSettings(min_free_disk_mb=0)) as again:  # no crash loop: the next start is clean
        assert again.recovered_from is None and again.stats()["queued"] == 1


@pytest.mark.parametrize("damage", ["garbage_header", "truncated", "empty", "random_pages"])
def test_damaged_database_is_moved_aside_and_a_fresh_one_opened(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "outbox.db"
    _filled_db(path)
    data = bytearray(path.read_bytes())
    if damage == "garbage_header":
        data[:100] = os.urandom(100)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = bytearray()
    else:
        rng = random.Random(5)
        for page in range(1, len(data) // 4096):
            if rng.random() < 0.3:
                data[page * 4096: page * 4096 + 64] = rng.randbytes(64)
    path.write_bytes(bytes(data))
    _assert_moved_aside_and_fresh(path, bytes(data))


def test_read_only_database_is_moved_aside(tmp_path: Path) -> None:
    d = Path(tempfile.mkdtemp(prefix="edgeslm-ro-"))
    try:
        path = d / "outbox.db"
        _filled_db(path, 10)
        path.chmod(0o444)
        code = ("from pathlib import Path; from edgeslm.outbox import Outbox; from edgeslm.settings import "
                f"OutboxSettings; ob = Outbox(Path({str(path)!r}), OutboxSettings(min_free_disk_mb=0)); "
                "print('MOVED', ob.recovered_from); ob.close()")
        cmd = [sys.executable, "-c", code]
        if os.geteuid() == 0:  # root ignores file modes: drop the override capabilities for the child
            if not shutil.which("setpriv"):
                pytest.skip("running as root and setpriv is missing: cannot make a file read-only for us")
            cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                   "--inh-caps=-dac_override,-dac_read_search", "--", *cmd]
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr[-2000:]
        moved = Path(next(x for x in r.stdout.splitlines() if x.startswith("MOVED ")).split(" ", 1)[1])
        assert moved.name.startswith("outbox.db.corrupt-") and moved.exists()
        assert "readonly" in r.stdout  # the logged reason
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_deleted_wal_after_kill_opens_consistently(tmp_path: Path, own_broker: LocalBroker) -> None:
    db = tmp_path / "outbox.db"
    ids, _ = _run_child(db, own_broker, seed=7, mode="drain", prefix="wal")
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    ob = Outbox(db, OutboxSettings(min_free_disk_mb=0))
    try:
        # What the WAL held is gone (SQLite cannot know); what remains is consistent and usable.
        assert ob.recovered_from is None and identity_holds(ob.stats())
        assert set(iter_queued_ids(db)) <= set(ids)
        ob.put("wal/t", {}, MessageClass.ALERT)
    finally:
        ob.close()


def test_deleted_wal_after_clean_close_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ids = _filled_db(path, 50)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert list(iter_queued_ids(path)) == ids  # close() checkpoints the WAL into the database


def test_unwritable_state_dir_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError):
        Outbox(Path("/proc/edgeslm-no/outbox.db"), OutboxSettings())


# --- 6. PUBACK with an error reason code ----------------------------------------------------------------
def _policy(topic: str, payload: dict[str, Any], attempt: int) -> int:
    if topic.endswith("/poison"):
        return 0x87  # Not authorized: never succeeds
    if topic.endswith("/transient"):
        return 0x97 if attempt <= 2 else 0x00  # Quota exceeded twice, then accepted
    if topic.endswith("/nomatch"):
        return 0x10  # No matching subscribers: success
    return 0x00


def test_rejected_puback_keeps_retries_then_dead_letters(tmp_path: Path) -> None:
    with FakeBroker(_policy) as fb:
        s = make_settings(tmp_path, fb.host, fb.port, client_id="rej",
                          outbox={"max_attempts": 3, "retry_base_s": 0.05, "retry_max_s": 0.2})
        ob = Outbox(tmp_path / "outbox.db", s.outbox)
        link = MqttLink(s)
        fwd = Forwarder(ob, link, s.outbox)
        try:
            ids = {t: [ob.put(f"r/{t}", {"i": i}, MessageClass.ALERT) for i in range(n)]
                   for t, n in (("ok", 5), ("transient", 3), ("poison", 2), ("nomatch", 1))}
            fwd.start()
            link.start()
            deadline = time.monotonic() + 15
            while ob.stats()["queued"] and time.monotonic() < deadline:
                time.sleep(0.05)
            st = ob.stats()
            assert st["queued"] == 0 and st["delivered"] == 9 and st["dead_lettered"] == 2, st
            assert identity_holds(st)
            dead = ob.dead_letters()
            assert sorted(x["id"] for x in dead) == sorted(ids["poison"])
            assert all(x["reason"] == 0x87 and x["attempts"] == 3 for x in dead)
            assert all(fb.attempts[i] == 3 for i in ids["transient"] + ids["poison"])
            assert all(fb.attempts[i] == 1 for i in ids["ok"] + ids["nomatch"])
        finally:
            fwd.stop(3)
            link.stop()
            ob.close()
    conn = sqlite3.connect(tmp_path / "outbox.db")
    try:
        rows = conn.execute("SELECT payload FROM dead_letter").fetchall()
        assert {json.loads(r[0])["id"] for r in rows} == set(ids["poison"])
    finally:
        conn.close()
