"""`edgeslm demo`: its own broker, the simulator with faults, the daemon, alerts and advice printed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edgeslm.demo import run_demo

pytestmark = [pytest.mark.broker, pytest.mark.model]


def test_demo_prints_alerts_and_model_advice(fixture_model: Path) -> None:
    out = io.StringIO()
    assert run_demo(duration=25, model=fixture_model, broker=None, rate_hz=5.0, out=out) == 0
    text = out.getvalue()
    assert "advisor: Phi-3 model tiny-phi3" in text
    assert "ALERT" in text and "RAISED" in text
    assert "ADVICE" in text and "from model tiny-phi3" in text
    assert "pump-1" in text  # the bearing fault, first to be injected
    summary = next(line for line in text.splitlines() if line.startswith("summary:"))
    assert "0 alerts raised" not in summary
