"""The worker's decisions on model results: publish model advice or rules with the reason.

The engine here is a scripted stand-in (these tests are about the worker's decisions, not the LLM;
the real model path is covered in test_advice_worker.py with the fixture model)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from edgeslm.advice.llm import GenResult, LlmError, LoadInfo
from edgeslm.advice.worker import AdviceWorker
from edgeslm.models import AdviceStatus
from tests.test_advice_helpers import Recorder, alert, settings

GOOD = {"summary": "pump-7 bearing_temp high", "probable_causes": ["lubrication"],
        "recommended_actions": ["grease the bearing"], "urgency": "high", "confidence": 0.7}


@dataclass
class Scripted:
    results: list[Any]
    info: Any = field(default_factory=lambda: LoadInfo("scripted", 0.0, 1.0, 1, "cpu"))

    def generate(self, prompts: list[Any], deadline: float, max_new: int | None = None, on_text: Any = None,
                 text_every_s: float = 0.0) -> GenResult:
        r = self.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    def warm_prefix(self, prompt: Any) -> int:
        return 0

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def _result(text: str, stop: str = "eos") -> GenResult:
    return GenResult(text=text, prompt_tokens=100, reused_tokens=50, output_tokens=40, prefill_s=0.1, ttft_s=0.1,
                     decode_s=0.5, total_s=0.6, stop=stop)


@pytest.mark.parametrize(("result", "reason"), [
    (_result(json.dumps({**GOOD, "summary": "compare with fan-3"})), "not in the alert's evidence"),
    (_result('{"summary": "cut'), "invalid JSON"),
    (_result(json.dumps({**GOOD, "urgency": "whenever"})), "schema: urgency"),
    (_result(json.dumps(GOOD)[:30], "max_new"), "max_new_tokens"),
    (_result(json.dumps(GOOD)[:30], "deadline"), "deadline"),
    (LlmError("model process died"), "model failed: model process died"),
])
def test_bad_model_results_fall_back_to_rules_with_reason(result: Any, reason: str) -> None:
    rec = Recorder()
    w = AdviceWorker(settings(None), rec.publish, rec.on_status)
    w._engine = Scripted([result])  # type: ignore[assignment]
    w.start()
    try:
        ev = alert("pump-7")
        w.submit(ev)
        (a,) = rec.wait_advice(1, 5)
        assert a.source == "rules" and a.reason is not None and reason in a.reason
        assert rec.statuses(ev.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
    finally:
        w.stop(5)


def test_good_result_is_published_as_model_advice() -> None:
    rec = Recorder()
    w = AdviceWorker(settings(None), rec.publish, rec.on_status)
    w._engine = Scripted([_result(json.dumps(GOOD))])  # type: ignore[assignment]
    w.start()
    try:
        w.submit(alert("pump-7"))
        (a,) = rec.wait_advice(1, 5)
        assert a.source == "model" and a.model == "scripted" and a.urgency == "high" and a.reason is None
        assert a.extra["prompt_tokens"] == 100 and a.latency_ms >= 0
    finally:
        w.stop(5)


def test_alert_whose_deadline_passed_in_the_queue_gets_rules_at_once() -> None:
    rec = Recorder()
    w = AdviceWorker(settings(None, deadline_s=0.05), rec.publish, rec.on_status)
    w._engine = Scripted([])  # type: ignore[assignment]  # would fail if asked
    ev = alert()
    w.submit(ev)  # queued before the thread runs
    time.sleep(0.1)
    w.start()
    try:
        (a,) = rec.wait_advice(1, 5)
        assert a.source == "rules" and a.reason == "deadline passed while waiting in the queue"
    finally:
        w.stop(5)
