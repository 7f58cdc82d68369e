"""Advisor scheduling without a model: queue keyed by asset, replacement, drops, order, statuses, stop."""

from __future__ import annotations

import threading

from edgeslm.advice.worker import AdviceWorker
from edgeslm.models import Advice, AdviceStatus, Severity
from tests.test_advice_helpers import Recorder, alert, settings


class Gate(Recorder):
    """A recorder whose first publish blocks until released: the worker is 'busy' and alerts wait."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(self, a: Advice) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        super().publish(a)


def _busy_worker(**advice: object) -> tuple[AdviceWorker, Gate]:
    rec = Gate()
    w = AdviceWorker(settings(None, **advice), rec.publish, rec.on_status)
    w.start()
    w.submit(alert("busy-asset", Severity.LOW))
    assert rec.entered.wait(5)
    return w, rec


def test_newer_alert_of_same_asset_replaces_waiting_one() -> None:
    w, rec = _busy_worker()
    try:
        old, new = alert("pump-7", Severity.MEDIUM), alert("pump-7", Severity.LOW)
        assert w.submit(old) and w.submit(new)
        assert w.stats()["queued"] == 1 and w.stats()["superseded"] == 1
        rec.release.set()
        rec.wait_advice(2, 5)
        assert [a.alert_id for a in rec.advice][1:] == [new.alarm_id]
        assert rec.statuses(old.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.SKIPPED]
        reason = next(r for a, s, r in rec.status if a == old.alarm_id and s == AdviceStatus.SKIPPED)
        assert reason is not None and new.alarm_id in reason
        assert rec.statuses(new.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
    finally:
        rec.release.set()
        w.stop(5)


def test_severity_update_of_same_alarm_keeps_it_pending() -> None:
    w, rec = _busy_worker()
    try:
        raised = alert("pump-7", Severity.MEDIUM, alarm_id="A1")
        worse = alert("pump-7", Severity.CRITICAL, alarm_id="A1")
        assert w.submit(raised) and w.submit(worse)
        rec.release.set()
        rec.wait_advice(2, 5)
        assert rec.statuses("A1") == [AdviceStatus.PENDING, AdviceStatus.DONE]
        assert rec.advice[1].urgency == "critical"  # advice for the newer, worse evidence
    finally:
        rec.release.set()
        w.stop(5)


def test_full_queue_drops_lowest_severity_and_counts() -> None:
    w, rec = _busy_worker(queue_size=2)
    try:
        low, high, medium, low2 = (alert("a1", Severity.LOW), alert("a2", Severity.HIGH),
                                   alert("a3", Severity.MEDIUM), alert("a4", Severity.LOW))
        assert w.submit(low) and w.submit(high)
        assert w.submit(medium)  # evicts the LOW one
        assert not w.submit(low2)  # lowest itself: refused
        st = w.stats()
        assert st["dropped"] == 2 and st["queued"] == 2 and st["skipped"] == 2
        assert rec.statuses(low.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.SKIPPED]
        assert rec.statuses(low2.alarm_id) == [AdviceStatus.SKIPPED]
        rec.release.set()
        rec.wait_advice(3, 5)
        # Most severe first.
        assert [a.alert_id for a in rec.advice][1:] == [high.alarm_id, medium.alarm_id]
    finally:
        rec.release.set()
        w.stop(5)


def test_stop_skips_waiting_alerts_and_refuses_new_ones() -> None:
    w, rec = _busy_worker()
    waiting = alert("pump-7")
    w.submit(waiting)
    rec.release.set()
    w.stop(5)
    late = alert("fan-3")
    assert not w.submit(late)
    assert rec.statuses(late.alarm_id) == [AdviceStatus.SKIPPED]
    assert rec.statuses(waiting.alarm_id)[-1] in (AdviceStatus.SKIPPED, AdviceStatus.DONE)


def test_publish_failure_marks_failed_and_worker_survives() -> None:
    rec = Recorder()
    calls = {"n": 0}

    def publish(a: Advice) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("outbox full")
        rec.publish(a)

    w = AdviceWorker(settings(None), publish, rec.on_status)
    w.start()
    try:
        first, second = alert("a1"), alert("a2")
        w.submit(first)
        w.submit(second)
        rec.wait_terminal(2)
        assert rec.statuses(first.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.FAILED]
        assert rec.statuses(second.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
        assert w.stats()["failed"] == 1
    finally:
        w.stop(5)
