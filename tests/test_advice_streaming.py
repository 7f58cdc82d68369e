"""Partial advice while the model writes (…/advice/partial): the real fixture model, real child process."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgeslm.advice.evidence import Prompt
from edgeslm.advice.llm import EngineConfig, LlmEngine
from edgeslm.advice.schema import partial_fields, partial_payload
from edgeslm.advice.worker import AdviceWorker
from edgeslm.models import Advice, AdvicePartial, AdviceStatus
from edgeslm.reload import changed_keys
from tests.test_advice_helpers import Recorder, alert, settings

PROMPT = Prompt("You advise on machines.", 'Alert on "pump-7": "bearing_temp" 81.2 degC, +8.9 sd.')


class Stream(Recorder):
    """Recorder that also keeps partials, and the order of partials and advice in one log."""

    def __init__(self, on_first_partial: Any = None) -> None:
        super().__init__()
        self.partials: list[AdvicePartial] = []
        self.log: list[tuple[str, str]] = []  # (kind, alert_id) in arrival order
        self._first = on_first_partial

    def on_partial(self, p: AdvicePartial) -> None:
        first = self._first
        with self._cv:
            self.partials.append(p)
            self.log.append(("final" if p.final else "partial", p.alert_id))
            self._first = None
        if first is not None:
            first(p)

    def publish(self, a: Advice) -> None:
        with self._cv:
            self.log.append(("advice", a.alert_id))
        super().publish(a)


def _worker(rec: Stream, model_dir: Path | None, **advice: Any) -> AdviceWorker:
    w = AdviceWorker(settings(model_dir, **advice), rec.publish, rec.on_status, on_partial=rec.on_partial)
    w.start()
    return w


def _check_stream(parts: list[AdvicePartial], alert_id: str) -> AdvicePartial:
    """Numbered from 1 without gaps, text and tokens only grow, exactly one final and it is last."""
    assert parts, "no partials"
    assert all(p.alert_id == alert_id for p in parts)
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert [p.final for p in parts] == [False] * (len(parts) - 1) + [True]
    for a, b in itertools.pairwise(parts):
        assert b.text.startswith(a.text.rstrip()), (a.text, b.text)
        assert b.output_tokens >= a.output_tokens and b.elapsed_ms >= a.elapsed_ms
    for p in parts:
        json.dumps(partial_payload(p), allow_nan=False)
    return parts[-1]


# ---------------------------------------------------------------------- pure
def test_partial_fields_reads_an_unfinished_advice_object() -> None:
    assert partial_fields("") == {} and partial_fields("not json") == {} and partial_fields("{") == {}
    assert partial_fields('{"summ') == {}
    assert partial_fields('{"summary":"Bearing te') == {"summary": "Bearing te"}
    assert partial_fields('{"summary":"Hot, fast","probable_ca') == {"summary": "Hot, fast"}
    assert partial_fields('{"summary":"a","probable_causes":') == {"summary": "a"}
    assert partial_fields('{"summary":"a","probable_causes":["wear","lub') == {
        "summary": "a", "probable_causes": ["wear", "lub"]}
    assert partial_fields('{"summary":"tab\\') == {"summary": "tab"}  # half an escape is dropped
    assert partial_fields('{"summary":"x\\u00') == {"summary": "x"}
    full = '{"summary":"a","probable_causes":["b"],"recommended_actions":["c"],"urgency":"high","confidence":0.7}'
    assert partial_fields(full) == {"summary": "a", "probable_causes": ["b"], "recommended_actions": ["c"],
                                    "urgency": "high", "confidence": 0.7}
    assert partial_fields(full[:-6]) == {"summary": "a", "probable_causes": ["b"], "recommended_actions": ["c"],
                                         "urgency": "high"}  # "confidence":0. is not a number yet
    assert "urgency" not in partial_fields('{"summary":"a","urgency":"hi')  # not an urgency (yet)
    assert partial_fields('{"summary":5,"extra":"x"}') == {}  # wrong types and unknown keys are not shown


def test_partial_payload_is_self_contained_and_final_says_how_it_ended() -> None:
    p = AdvicePartial(alert_id="a1", asset="pump-7", part=3, text='{"summary":"Bear', output_tokens=9,
                      elapsed_ms=5210, model="m")
    out = partial_payload(p, ts=0.0)
    assert out == {"alert_id": "a1", "ts": "1970-01-01T00:00:00.000Z", "asset": "pump-7", "part": 3,
                   "final": False, "text": '{"summary":"Bear', "fields": {"summary": "Bear"}, "output_tokens": 9,
                   "elapsed_ms": 5210, "model": "m"}
    f = partial_payload(AdvicePartial(alert_id="a1", asset="pump-7", part=4, text="", output_tokens=9,
                                      elapsed_ms=6000, final=True, stop="deadline", accepted=False), ts=0.0)
    assert f["final"] is True and f["stop"] == "deadline" and f["accepted"] is False


def test_partial_interval_is_applied_live_on_reload() -> None:
    old, new = settings(None), settings(None, partial_interval_s=0.5)
    assert dict(changed_keys(old, new)) == {"advice.partial_interval_s": True}


# ---------------------------------------------------------------------- engine
@pytest.mark.model
def test_engine_hands_out_text_at_most_once_per_interval(fixture_model: Path) -> None:
    # The fixture decodes ~100 tokens in ~7 ms (77 steps), so a 2 ms interval must thin the calls out to
    # a handful, while 0 gives one per step that decoded text.
    eng = LlmEngine(EngineConfig(model_dir=str(fixture_model), threads=1, prefix_reuse=False))
    eng.load(warmup=False)
    try:
        every_step: list[tuple[float, str, int]] = []
        r0 = eng.generate([PROMPT], time.monotonic() + 30, on_text=lambda d, n: every_step.append((0.0, d, n)),
                          text_every_s=0.0)
        calls: list[tuple[float, str, int]] = []
        every = 0.002
        r = eng.generate([PROMPT], time.monotonic() + 30, on_text=lambda d, n: calls.append((time.monotonic(), d, n)),
                         text_every_s=every)
        assert r.text == r0.text  # greedy, fresh generator each time: the same answer
        assert len(every_step) >= r0.steps // 2, (len(every_step), r0.steps)
        assert 2 <= len(calls) <= r.decode_s / every + 2, (len(calls), r.decode_s)
        span = calls[-1][0] - calls[0][0]
        assert (len(calls) - 1) * every <= span + 0.002, (len(calls), span)
        # the deltas are the answer's beginning, in order; tokens only grow
        for c in (calls, every_step):
            assert r.text.startswith("".join(d for _, d, _ in c).strip())
            assert [n for *_, n in c] == sorted(n for *_, n in c) and c[-1][2] <= r.output_tokens
        # without a callback the answer is the same
        assert eng.generate([PROMPT], time.monotonic() + 30).text == r.text
    finally:
        eng.close()


# ---------------------------------------------------------------------- worker
@pytest.mark.model
@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_partials_arrive_in_order_with_growing_text_then_one_final_before_the_advice(
        fixture_model: Path, isolation: str) -> None:
    rec = Stream()
    w = _worker(rec, fixture_model, isolation=isolation, partial_interval_s=0.001, warmup=False)
    try:
        events = [alert("pump-7"), alert("fan-3")]
        for ev in events:
            assert w.submit(ev)
            rec.wait_advice(len(rec.advice) + 1, 30)
        for ev, adv in zip(events, rec.advice, strict=True):
            parts = [p for p in rec.partials if p.alert_id == ev.alarm_id]
            final = _check_stream(parts, ev.alarm_id)
            assert len(parts) >= 2  # at least one partial while writing, then the final
            assert final.stop == "eos" and final.accepted is (adv.source == "model")
            assert final.model == "tiny-phi3" and final.asset == ev.asset
            if adv.source == "model":  # the final text is the answer that was published
                assert json.loads(final.text)["summary"].strip() == adv.summary
            kinds = [k for k, a in rec.log if a == ev.alarm_id]
            assert kinds[-2:] == ["final", "advice"] and set(kinds[:-2]) == {"partial"}
        assert w.stats()["partials"] == len(rec.partials)
    finally:
        w.stop(10)


@pytest.mark.model
def test_deadline_mid_generation_still_ends_the_stream_with_a_final_partial(fixture_model: Path) -> None:
    # The first partial takes longer than the whole deadline (a stand-in for a slow model on a busy CPU):
    # the engine stops at its next step, the stream closes with stop="deadline", rules advice follows.
    rec = Stream(on_first_partial=lambda p: time.sleep(2.2))
    w = _worker(rec, fixture_model, partial_interval_s=0.001, deadline_s=2.0, warmup=False)
    try:
        ev = alert()
        assert w.submit(ev)
        (adv,) = rec.wait_advice(1, 20)
        assert adv.source == "rules" and "deadline" in (adv.reason or "")
        final = _check_stream(rec.partials, ev.alarm_id)
        assert final.stop == "deadline" and final.accepted is False
        assert [k for k, _ in rec.log][-2:] == ["final", "advice"]
        assert rec.statuses(ev.alarm_id) == [AdviceStatus.PENDING, AdviceStatus.DONE]
    finally:
        w.stop(5)


@pytest.mark.model
def test_model_process_dying_mid_generation_ends_the_stream_with_an_error_final(fixture_model: Path) -> None:
    holder: dict[str, AdviceWorker] = {}

    def kill_child(p: AdvicePartial) -> None:
        proc = holder["w"]._engine._proc  # type: ignore[union-attr]
        proc.kill()
        proc.join(5)

    rec = Stream(on_first_partial=kill_child)
    w = _worker(rec, fixture_model, isolation="process", partial_interval_s=0.001, warmup=False)
    holder["w"] = w
    try:
        ev = alert()
        assert w.submit(ev)
        (adv,) = rec.wait_advice(1, 30)
        assert adv.source == "rules" and "model failed" in (adv.reason or "")
        final = _check_stream(rec.partials, ev.alarm_id)
        assert final.stop == "error" and final.accepted is False
        assert [k for k, _ in rec.log][-2:] == ["final", "advice"]
    finally:
        w.stop(10)


@pytest.mark.model
def test_zero_interval_disables_streaming_and_a_failing_consumer_never_costs_the_advice(
        fixture_model: Path) -> None:
    rec = Stream()
    w = _worker(rec, fixture_model, partial_interval_s=0.0, warmup=False)
    try:
        assert w.submit(alert())
        rec.wait_advice(1, 30)
        assert rec.partials == [] and w.stats()["partials"] == 0
    finally:
        w.stop(5)

    calls = threading.Event()

    def broken(p: AdvicePartial) -> None:
        calls.set()
        raise RuntimeError("HMI link down")

    rec2 = Recorder()
    w2 = AdviceWorker(settings(fixture_model, partial_interval_s=0.001, warmup=False), rec2.publish,
                      rec2.on_status, on_partial=broken)
    w2.start()
    try:
        assert w2.submit(alert())
        (adv,) = rec2.wait_advice(1, 30)
        assert calls.is_set() and adv.source == "model", adv.reason
    finally:
        w2.stop(5)
