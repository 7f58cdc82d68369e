"""Pure helpers: ids, topics, the reload diff, sd_notify, rate-limited logging, alert payloads."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from edgeslm.alerts import alert_payload
from edgeslm.ids import uuid7
from edgeslm.logs import RateLimited
from edgeslm.models import AdviceStatus, AlarmEvent, AlarmState, Severity, SignalEvidence
from edgeslm.mqtt import topics
from edgeslm.reload import changed_keys
from edgeslm.sdnotify import Notifier
from edgeslm.settings import load_settings

SUBS = [{"topic": "a/#"}]


def test_uuid7_is_version_7_and_sorts_by_time() -> None:
    ids = [uuid7() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)
    assert uuid7(now_ms=1) < uuid7()


def test_topics_escape_untrusted_asset_ids() -> None:
    assert topics.alerts("edgeslm", "plant", "pump/+#1") == "edgeslm/plant/pump___1/alerts"
    assert topics.status("edgeslm", "gw") == "edgeslm/gw/status"
    assert topics.segment("a/b/c", -2) == "b" and topics.segment("a", 3) is None


def test_reload_diff_names_keys_and_what_applies_live() -> None:
    old = load_settings(None, subscriptions=SUBS)
    new = load_settings(None, subscriptions=SUBS, mqtt={"port": 1884},
                        detect={"zscore": {"threshold": 5.0}}, advice={"deadline_s": 20.0})
    diff = dict(changed_keys(old, new))
    assert diff == {"mqtt.port": False, "detect.zscore.threshold": True, "advice.deadline_s": True}


def test_sd_notify_datagrams(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(2)
    n = Notifier(path)
    assert n.enabled and n.notify("READY=1", "STATUS=running")
    assert srv.recv(100) == b"READY=1\nSTATUS=running"
    n.close()
    srv.close()
    assert not Notifier("").notify("READY=1")


def test_watchdog_interval_is_half_of_systemds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert Notifier.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert Notifier.watchdog_interval() is None


class _Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.calls.append((event, kw))


def test_rate_limited_log_counts_what_it_suppresses() -> None:
    log = _Log()
    rl = RateLimited(log, interval=3600)
    assert rl.warning("k", "bad_payload", n=1)
    assert not rl.warning("k", "bad_payload", n=2)
    assert not rl.warning("k", "bad_payload", n=3)
    assert rl.warning("other", "bad_payload", n=4)
    assert [c[1]["n"] for c in log.calls] == [1, 4]
    rl._last["k"] -= 7200  # as if an hour passed
    assert rl.warning("k", "bad_payload", n=5)
    assert log.calls[-1][1] == {"n": 5, "suppressed": 2}


def test_alert_payload_is_strict_json_even_with_non_finite_statistics() -> None:
    ev = AlarmEvent("019a0000-0000-7000-8000-000000000000", "pump-1", AlarmState.RAISED, Severity.HIGH,
                    1764000000.0, 1764000000.0, ("zscore",),
                    (SignalEvidence("temp", 75.0, 70.0, 60.0, 75.0, 60.0, 0.0, float("inf"), ("zscore",), "degC"),),
                    0.9999)
    body = alert_payload(ev, site="s", gateway="g", advice_status=AdviceStatus.PENDING)
    text = json.dumps(body, allow_nan=False)
    assert body["evidence"]["signals"][0]["score"] is None
    assert json.loads(text)["ts"] == "2025-11-24T16:00:00.000Z"
