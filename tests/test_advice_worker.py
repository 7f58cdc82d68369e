"""AdviceWorker with the real tiny fixture model: model advice, fallbacks, queue, statuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edgeslm.advice.schema import ModelAdvice, advice_payload
from edgeslm.advice.worker import AdviceWorker
from edgeslm.models import AdviceStatus, Severity
from tests.test_advice_helpers import Recorder, alert, settings

pytestmark = pytest.mark.model


def _worker(rec: Recorder, model_dir: Path | None, **advice: object) -> AdviceWorker:
    w = AdviceWorker(settings(model_dir, **advice), rec.publish, rec.on_status)
    w.start()
    return w


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_fixture_model_gives_schema_valid_model_advice(fixture_model: Path, isolation: str) -> None:
    rec = Recorder()
    w = _worker(rec, fixture_model, isolation=isolation)
    try:
        assert w.model_loaded and w.model_name == "tiny-phi3"
        assert "tiny-phi3" in w.describe()
        events = [alert("pump-7"), alert("fan-3", Severity.MEDIUM), alert("pump-9", Severity.LOW),
                  alert("fan-3", Severity.CRITICAL), alert("pump-7", Severity.LOW)]
        for ev in events:
            assert w.submit(ev)
            rec.wait_advice(len(rec.advice) + 1)  # one at a time: no replacement in this test
        for a, ev in zip(rec.advice, events, strict=True):
            assert a.source == "model", a.reason
            assert a.alert_id == ev.alarm_id and a.model == "tiny-phi3" and a.reason is None
            ModelAdvice(summary=a.summary, probable_causes=list(a.probable_causes),
                        recommended_actions=list(a.recommended_actions), urgency=a.urgency, confidence=a.confidence)
            payload = advice_payload(a)
            json.dumps(payload, allow_nan=False)
            assert "reason" not in payload
            assert rec.statuses(ev.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
        st = w.stats()
        assert st["model"] == 5 and st["rules"] == 0 and st["done"] == 5 and st["queued"] == 0
    finally:
        w.stop(10)


def test_no_model_configured_gives_rule_advice_with_reason() -> None:
    rec = Recorder()
    w = _worker(rec, None)
    try:
        assert not w.model_loaded and w.model_name is None
        assert "rule-based" in w.describe() and "edgeslm model pull" in w.describe()
        ev = alert()
        assert w.submit(ev)
        (a,) = rec.wait_advice(1, 5)
        assert a.source == "rules" and a.reason == "no model configured"
        assert advice_payload(a)["reason"] == "no model configured"
        assert rec.statuses(ev.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
    finally:
        w.stop(5)


def test_broken_model_folder_falls_back_to_rules_without_raising(tmp_path: Path) -> None:
    (tmp_path / "genai_config.json").write_text("{not json")
    rec = Recorder()
    w = _worker(rec, tmp_path, isolation="process")
    try:
        assert not w.model_loaded
        assert "unusable" in w.describe()
        w.submit(alert())
        (a,) = rec.wait_advice(1, 5)
        assert a.source == "rules" and a.reason is not None and a.reason.startswith("model unusable")
    finally:
        w.stop(5)


def test_deadline_is_honoured_with_rule_advice(fixture_model: Path) -> None:
    rec = Recorder()
    # A deadline far shorter than any generation: the model is stopped and rules are published in time.
    w = _worker(rec, fixture_model, deadline_s=0.001, warmup=False)
    try:
        ev = alert()
        t0 = time.monotonic()
        w.submit(ev)
        (a,) = rec.wait_advice(1, 10)
        assert time.monotonic() - t0 < 5
        assert a.source == "rules" and a.reason is not None and "deadline" in a.reason
        assert rec.statuses(ev.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
        assert w.stats()["deadline_missed"] == 1
    finally:
        w.stop(5)


def test_disabled_advice_skips() -> None:
    rec = Recorder()
    w = _worker(rec, None, enabled=False)
    try:
        ev = alert()
        assert not w.submit(ev)
        assert rec.statuses(ev.alarm_id) == [AdviceStatus.SKIPPED]
        assert "disabled" in w.describe()
    finally:
        w.stop(5)
