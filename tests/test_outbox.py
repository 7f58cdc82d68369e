"""Outbox store and forwarder: unit behaviour (no broker) and one drain against a real mosquitto."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from edgeslm.outbox import Forwarder, MessageClass, Outbox, OutboxClosed, OutboxFull, outbox_stats
from edgeslm.settings import OutboxSettings
from tests.faults.outbox_helpers import Verifier, identity_holds, make_settings


def settings(**kw: Any) -> OutboxSettings:
    return OutboxSettings(**{"min_free_disk_mb": 0, **kw})


@pytest.fixture
def ob(tmp_path: Path):
    o = Outbox(tmp_path / "outbox.db", settings())
    yield o
    o.close()


def rows(path: Path) -> list[tuple[str, str, int, bytes]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, topic, seq, payload FROM queue ORDER BY n").fetchall()
    finally:
        conn.close()


def test_put_assigns_id_and_per_topic_seq_inside_the_stored_payload(ob: Outbox) -> None:
    p1: dict[str, Any] = {"alert_id": "episode-1", "v": 1}
    id1 = ob.put("a/alerts", p1, MessageClass.ALERT)
    id2 = ob.put("b/alerts", {"v": 2}, MessageClass.ALERT)
    id3 = ob.put("a/alerts", {"v": 3, "id": "caller-set", "seq": 99}, MessageClass.ALERT)
    assert p1["id"] == id1 and p1["seq"] == 1 and p1["alert_id"] == "episode-1"
    assert len({id1, id2, id3}) == 3
    stored = rows(ob.path)
    payloads = [json.loads(r[3]) for r in stored]
    assert [(p["id"], p["seq"]) for p in payloads] == [(id1, 1), (id2, 1), (id3, 2)]
    assert payloads[2]["v"] == 3


def test_seq_is_persistent_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, settings()) as o:
        o.put("t", {}, MessageClass.ALERT)
        o.put("t", {}, MessageClass.ALERT)
    with Outbox(path, settings()) as o:
        p: dict[str, Any] = {}
        o.put("t", p, MessageClass.ALERT)
        assert p["seq"] == 3
        assert o.stats()["produced"] == 3


def test_put_rejects_nan_and_stores_nothing(ob: Outbox) -> None:
    with pytest.raises(ValueError):
        ob.put("t", {"v": float("nan")}, MessageClass.ALERT)
    assert ob.stats()["produced"] == 0


def test_status_is_latest_wins_and_counted_as_superseded(ob: Outbox) -> None:
    for i in range(5):
        ob.put("gw/status", {"i": i}, MessageClass.STATUS, retain=True)
    ob.put("gw/other", {"i": 0}, MessageClass.STATUS)
    st = ob.stats()
    assert st["queued"] == 2 and st["dropped_by"] == {"status": {"superseded": 4}}
    assert identity_holds(st)
    assert json.loads(rows(ob.path)[0][3])["i"] == 4


def test_full_queue_drops_status_then_advice_and_alerts_last(tmp_path: Path) -> None:
    o = Outbox(tmp_path / "o.db", settings(max_rows=10, coalesce_status=False))
    try:
        for i in range(4):
            o.put("s", {"i": i}, MessageClass.STATUS)
            o.put("v", {"i": i}, MessageClass.ADVICE)
        o.put("a", {"i": 0}, MessageClass.ALERT)
        o.put("a", {"i": 1}, MessageClass.ALERT)  # 10 rows: full
        for i in range(6):
            o.put("a", {"i": 2 + i}, MessageClass.ALERT)  # evicts 4 status, then 2 advice (oldest first)
        st = o.stats()
        assert st["dropped_by"] == {"status": {"full": 4}, "advice": {"full": 2}}
        with pytest.raises(OutboxFull) as e:  # a status message cannot evict alerts or advice
            o.put("s", {}, MessageClass.STATUS)
        assert e.value.accounted
        st = o.stats()
        assert st["queued"] == 10 and st["dropped_by"]["status"]["full"] == 5
        assert identity_holds(st)
        kept = [json.loads(r[3]) for r in rows(o.path) if r[1] == "v"]
        assert [p["i"] for p in kept] == [2, 3]
    finally:
        o.close()


def test_bytes_cap_evicts_oldest_of_the_same_class(tmp_path: Path) -> None:
    o = Outbox(tmp_path / "o.db", settings(max_bytes=64 * 1024))
    try:
        blob = "x" * 1000
        for i in range(200):
            o.put("a", {"i": i, "blob": blob}, MessageClass.ALERT)
        st = o.stats()
        assert st["queued_bytes"] <= 64 * 1024 and st["dropped_by"]["alert"]["full"] > 0
        assert identity_holds(st)
        with pytest.raises(OutboxFull):
            o.put("a", {"blob": "y" * 70_000}, MessageClass.ALERT)
        assert o.stats()["dropped_by"]["alert"]["too_large"] == 1
    finally:
        o.close()


def test_ttl_expires_per_class(tmp_path: Path) -> None:
    o = Outbox(tmp_path / "o.db", settings(ttl_status_s=0.2, coalesce_status=False))
    try:
        o.put("s", {}, MessageClass.STATUS)
        o.put("s", {}, MessageClass.STATUS)
        o.put("a", {}, MessageClass.ALERT)
        deadline = time.monotonic() + 5
        while o.stats()["expired"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = o.stats()
        assert st["expired_by"] == {"status": 2} and st["queued"] == 1 and identity_holds(st)
    finally:
        o.close()


def test_puts_from_many_threads_are_all_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    o = Outbox(path, settings())
    ids: list[str] = []
    lock = threading.Lock()

    def producer(k: int) -> None:
        for i in range(200):
            x = o.put(f"t/{k}", {"i": i}, MessageClass.ALERT)
            with lock:
                ids.append(x)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    o.close()
    stored = rows(path)
    assert sorted(r[0] for r in stored) == sorted(ids)
    for k in range(6):  # per-topic seq is gap-free and in queue order
        assert [r[2] for r in stored if r[1] == f"t/{k}"] == list(range(1, 201))


def test_closed_outbox_refuses_puts(tmp_path: Path) -> None:
    o = Outbox(tmp_path / "o.db", settings())
    o.close()
    with pytest.raises(OutboxClosed):
        o.put("t", {}, MessageClass.ALERT)


def test_outbox_stats_reads_a_closed_file(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, settings()) as o:
        o.put("t", {}, MessageClass.ALERT)
    st = outbox_stats(path)
    assert st["produced"] == 1 and st["queued"] == 1 and st["dead_letter_rows"] == 0


@pytest.mark.broker
def test_forwarder_drains_in_order_with_id_seq_properties(tmp_path: Path, broker: Any) -> None:
    s = make_settings(tmp_path, broker.host, broker.port, client_id="fwd-drain")
    prefix = f"drain-{time.monotonic_ns()}"
    with Verifier(broker.host, broker.port, f"{prefix}/#", client_id=f"v-{prefix}") as ver:
        from edgeslm.mqtt.client import MqttLink
        o = Outbox(tmp_path / "o.db", s.outbox)
        link = MqttLink(s)
        fwd = Forwarder(o, link, s.outbox)
        fwd.start()
        link.start()
        try:
            ids = [o.put(f"{prefix}/{i % 3}", {"i": i}, MessageClass.ALERT) for i in range(300)]
            assert ver.wait_for(set(ids), timeout=15)
            deadline = time.monotonic() + 5
            while o.stats()["queued"] and time.monotonic() < deadline:
                time.sleep(0.02)
            st = o.stats()
            assert st["delivered"] == 300 and st["queued"] == 0 and identity_holds(st)
            ver.assert_fifo_per_topic()
            m = ver.messages[0]
            assert m.props["id"] == m.payload["id"] and m.props["seq"] == str(m.payload["seq"])
            assert "historical" not in m.payload
        finally:
            fwd.stop(3)
            link.stop()
            o.close()


@pytest.mark.broker
def test_backlog_older_than_a_few_seconds_is_flagged_historical_and_rate_limited(tmp_path: Path,
                                                                              broker: Any) -> None:
    s = make_settings(tmp_path, broker.host, broker.port, client_id="fwd-hist",
                      outbox={"historical_after_s": 0.0, "replay_rate_per_s": 100.0})
    prefix = f"hist-{time.monotonic_ns()}"
    with Verifier(broker.host, broker.port, f"{prefix}/#", client_id=f"v-{prefix}") as ver:
        from edgeslm.mqtt.client import MqttLink
        o = Outbox(tmp_path / "o.db", s.outbox)
        ids = [o.put(f"{prefix}/t", {"i": i}, MessageClass.ALERT) for i in range(60)]
        link = MqttLink(s)
        fwd = Forwarder(o, link, s.outbox)
        fwd.start()
        link.start()
        try:
            t0 = time.monotonic()
            assert ver.wait_for(set(ids), timeout=10)
            elapsed = time.monotonic() - t0
            assert elapsed >= 0.4  # 60 messages at 100/s with a burst of 10
            assert all(m.payload["historical"] is True and m.props["historical"] == "true"
                       for m in ver.messages)
        finally:
            fwd.stop(3)
            link.stop()
            o.close()


# --- accounting is exact under any mix of operations ---------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(list(MessageClass)), st.integers(0, 3), st.integers(0, 3000)),
    st.tuples(st.just("deliver"), st.integers(0, 5)),
    st.tuples(st.just("reject"), st.integers(0, 5)),
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=60))
def test_accounting_identity_holds_for_any_sequence(tmp_path_factory: pytest.TempPathFactory,
                                                    ops: list[tuple[Any, ...]]) -> None:
    path = tmp_path_factory.mktemp("acct") / "o.db"
    o = Outbox(path, settings(max_rows=12, max_bytes=64 * 1024, max_attempts=2))
    try:
        for op in ops:
            queued = [r.n for r in o.pending(0, 100)]
            if op[0] == "put":
                with contextlib.suppress(OutboxFull):
                    o.put(f"t/{op[2]}", {"pad": "x" * op[3]}, op[1])
            elif op[0] == "deliver" and queued:
                o.mark_delivered(queued[: op[1] + 1] + queued[:1]).result(5)  # includes a duplicate ack
            elif op[0] == "reject" and queued:
                o.mark_rejected(queued[min(op[1], len(queued) - 1)], 0x80).result(5)
            st_ = o.stats()
            assert identity_holds(st_), st_
            assert st_["queued"] == len(o.pending(0, 1000)) <= 12
    finally:
        o.close()
    reopened = Outbox(path, settings())
    try:
        if ops:
            assert reopened.stats() == {**st_, "unstored": 0}  # persistent and exact across a restart
    finally:
        reopened.close()


def test_historical_flag_is_appended_as_valid_json_even_if_the_caller_set_one() -> None:
    from edgeslm.outbox.forwarder import Forwarder as F

    class Link:
        connected = threading.Event()
        on_ack = None
        on_connected: list[Any] = []
        on_disconnected: list[Any] = []
        sent: list[tuple[bytes, dict[str, str]]] = []

        def publish(self, topic: str, payload: bytes, **kw: Any) -> Any:
            self.sent.append((payload, kw["user_properties"]))
            return type("R", (), {"mid": len(self.sent), "queued": True})()

    class Ob:
        def add_listener(self, cb: Any) -> None:
            pass

    from edgeslm.outbox import QueuedRow
    f = F(Ob(), Link(), settings())  # type: ignore[arg-type]
    for body in (b'{"id":"a","seq":1,"v":2}', b'{"id":"b","seq":2,"historical":false}'):
        f._send(QueuedRow(1, "a", "t", 1, MessageClass.ALERT, False, 0.0, body, 0), True, 0.0)
    for payload, props in Link.sent:
        assert json.loads(payload)["historical"] is True and props["historical"] == "true"
        assert payload.count(b'"historical"') == 1


@pytest.mark.broker
def test_stop_flushes_what_was_just_put(tmp_path: Path, broker: Any) -> None:
    s = make_settings(tmp_path, broker.host, broker.port, client_id="fwd-flush")
    prefix = f"flush-{time.monotonic_ns()}"
    with Verifier(broker.host, broker.port, f"{prefix}/#", client_id=f"v-{prefix}") as ver:
        from edgeslm.mqtt.client import MqttLink
        o = Outbox(tmp_path / "o.db", s.outbox)
        link = MqttLink(s)
        fwd = Forwarder(o, link, s.outbox)
        fwd.start()
        link.start()
        try:
            assert link.wait_connected(10)
            last = o.put(f"{prefix}/status", {"state": "stopping"}, MessageClass.STATUS, retain=True)
            fwd.stop(3)  # at once: the daemon's shutdown order
            assert o.stats()["delivered"] == 1
            assert ver.wait_for({last}, timeout=5)
        finally:
            fwd.stop(3)
            link.stop()
            o.close()
