"""Alerts, settings and a recorder shared by the advice tests (holds no tests itself)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from edgeslm.models import Advice, AdviceStatus, AlarmEvent, AlarmState, Severity, SignalEvidence
from edgeslm.settings import Settings

_ids = itertools.count(1)

ASSETS = {
    "pump-7": {"machine_type": "centrifugal pump, 15 kW", "failure_modes": ["bearing wear", "cavitation"],
               "notes": "Bearings greased every 3 months. Seal replaced 2026-05.",
               "signals": {"bearing_temp": {"unit": "degC", "description": "drive-end bearing housing",
                                            "high": 95.0},
                           "vib_rms": {"unit": "mm/s"}}},
    "fan-3": {"machine_type": "cooling tower fan", "failure_modes": ["blade imbalance"],
              "signals": {"motor_current": {"unit": "A"}}},
}


def settings(model_dir: Path | None = None, **advice: Any) -> Settings:
    adv: dict[str, Any] = {"model_dir": model_dir, "isolation": "thread", **advice}
    return Settings(subscriptions=[{"topic": "plant/#"}], advice=adv, assets=ASSETS)


def signal(name: str = "bearing_temp", value: float = 81.2, unit: str = "degC", base: float = 61.0,
           std: float = 2.1) -> SignalEvidence:
    return SignalEvidence(signal=name, value=value, window_mean=value - 1.5, window_min=value - 6,
                          window_max=value + 0.8, baseline_mean=base, baseline_std=std, score=8.8,
                          detectors=("zscore",), unit=unit)


def alert(asset: str = "pump-7", severity: Severity = Severity.HIGH, signals: tuple[SignalEvidence, ...] | None = None,
          alarm_id: str | None = None, state: AlarmState = AlarmState.RAISED) -> AlarmEvent:
    now = time.time()
    sigs = signals if signals is not None else (signal(), signal("vib_rms", 7.9, "mm/s", 2.2, 0.4))
    return AlarmEvent(alarm_id=alarm_id or f"alarm-{next(_ids)}", asset=asset, state=state, severity=severity,
                      ts=now, started_ts=now - 45, detectors=("zscore", "cusum"), signals=sigs, score=8.8)


class Recorder:
    """Collects publish/on_status calls from the worker thread."""

    def __init__(self) -> None:
        self.advice: list[Advice] = []
        self.status: list[tuple[str, AdviceStatus, str | None]] = []
        self._cv = threading.Condition()

    def publish(self, a: Advice) -> None:
        with self._cv:
            self.advice.append(a)
            self._cv.notify_all()

    def on_status(self, ev: AlarmEvent, st: AdviceStatus, reason: str | None) -> None:
        with self._cv:
            self.status.append((ev.alarm_id, st, reason))
            self._cv.notify_all()

    def wait_advice(self, n: int, timeout: float = 60.0) -> list[Advice]:
        """Wait for n advice AND their DONE statuses (published first, then the status)."""
        def ready() -> bool:
            done = sum(1 for _, s, _ in self.status if s in (AdviceStatus.DONE, AdviceStatus.FAILED))
            return len(self.advice) >= n and done >= n

        with self._cv:
            ok = self._cv.wait_for(ready, timeout)
        assert ok, f"only {len(self.advice)} of {n} advice within {timeout} s; status={self.status}"
        return list(self.advice)

    def wait_terminal(self, n: int, timeout: float = 10.0) -> None:
        """Wait until n alerts reached done, failed or skipped."""
        end = (AdviceStatus.DONE, AdviceStatus.FAILED, AdviceStatus.SKIPPED)
        with self._cv:
            ok = self._cv.wait_for(lambda: sum(1 for _, s, _ in self.status if s in end) >= n, timeout)
        assert ok, f"statuses: {self.status}"

    def statuses(self, alarm_id: str) -> list[AdviceStatus]:
        return [s for a, s, _ in self.status if a == alarm_id]
