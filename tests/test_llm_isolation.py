"""Generation runs in a child process: the daemon's threads keep the GIL while the model computes.

onnxruntime-genai 0.18 holds the GIL inside append_tokens/generate_next_token (measured on the
Phi-3-mini-shaped model: a Python counting thread ran at 1 % of its idle rate during in-process
generation; see docs/advice.md). These tests check the isolation on the fixture model."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edgeslm.advice.evidence import Prompt
from edgeslm.advice.llm import EngineConfig, EngineProcess, LlmError
from edgeslm.advice.worker import AdviceWorker
from edgeslm.models import Severity
from tests.test_advice_helpers import Recorder, alert, settings

pytestmark = pytest.mark.model


def _count_for(seconds: float) -> float:
    stop = threading.Event()
    n = [0]

    def spin() -> None:
        while not stop.is_set():
            n[0] += 1

    t = threading.Thread(target=spin)
    t0 = time.perf_counter()
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return n[0] / (time.perf_counter() - t0)


def test_detector_thread_keeps_running_while_the_child_generates(fixture_model: Path) -> None:
    rec = Recorder()
    w = AdviceWorker(settings(fixture_model, isolation="process", threads=1, queue_size=50), rec.publish,
                     rec.on_status)
    w.start()
    try:
        engine = w._engine
        assert isinstance(engine, EngineProcess) and engine.pid not in (None, os.getpid())
        idle = _count_for(1.0)
        # Feed alerts faster than they can be answered (many assets, so none replaces another).
        t_submit = time.perf_counter()
        for i in range(40):
            assert w.submit(alert(f"asset-{i}", Severity.MEDIUM))
        submit_s = time.perf_counter() - t_submit
        busy = _count_for(1.0)
        assert submit_s < 0.5  # submit never waits for the model
        assert busy > 0.4 * idle, (busy, idle)  # a GIL-holding model would leave ~1 %
        rec.wait_advice(40, 120)
        assert w.stats()["model"] == 40
    finally:
        w.stop(10)


def test_child_that_dies_is_restarted_and_the_request_falls_back(fixture_model: Path) -> None:
    eng = EngineProcess(EngineConfig(model_dir=str(fixture_model), threads=1))
    eng.load(warmup=False)
    try:
        first = eng.pid
        assert eng._proc is not None
        eng._proc.kill()
        eng._proc.join(5)
        r = eng.generate([Prompt("You advise.", 'Alert on "p-1".')], time.monotonic() + 30)  # restarts the child
        assert eng.pid not in (None, first) and r.output_tokens > 0
    finally:
        eng.close()
    with pytest.raises(LlmError):
        eng.abort()
        eng.generate([Prompt("a", "b")], time.monotonic() + 5)


def test_prompt_too_long_for_every_variant_is_refused(fixture_model: Path) -> None:
    from edgeslm.advice.llm import LlmEngine

    eng = LlmEngine(EngineConfig(model_dir=str(fixture_model), threads=1, max_prompt_tokens=64))
    eng.load(warmup=False)
    with pytest.raises(LlmError, match="exceeds max_prompt_tokens"):
        eng.generate([Prompt("You advise.", "word " * 200)], time.monotonic() + 10)
    # A shorter variant is used when the first does not fit.
    r = eng.generate([Prompt("You advise.", "word " * 200), Prompt("You advise.", "short")], time.monotonic() + 10)
    assert r.variant == 1 and r.prompt_tokens <= 64
    eng.close()
