"""Frozen value objects passed between threads. Pydantic lives only where data enters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Sample(NamedTuple):
    """One numeric reading of one signal of one asset; ts is Unix epoch seconds.

    A NamedTuple rather than a frozen dataclass: one is made per reading on the hot path, and a tuple
    is built in half the time (measured: 0.67 vs 1.34 us), while staying immutable.
    """

    asset: str
    signal: str
    ts: float
    value: float


class AlarmState(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class AdviceStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SignalEvidence:
    """Window statistics of one signal against its baseline, as shown to engineers and the model."""

    signal: str
    value: float
    window_mean: float
    window_min: float
    window_max: float
    baseline_mean: float
    baseline_std: float
    score: float
    detectors: tuple[str, ...] = ()
    unit: str = ""

    @property
    def deviation(self) -> float:
        """Distance of the window mean from the baseline in baseline standard deviations."""
        if self.baseline_std <= 0:
            return 0.0
        return (self.window_mean - self.baseline_mean) / self.baseline_std


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A change of an alarm episode: raised, updated (worse) or cleared. One id per episode."""

    alarm_id: str
    asset: str
    state: AlarmState
    severity: Severity
    ts: float
    started_ts: float
    detectors: tuple[str, ...]
    signals: tuple[SignalEvidence, ...]  # ranked, strongest contribution first
    score: float

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.signal for s in self.signals)


@dataclass(frozen=True, slots=True)
class Advice:
    """Maintenance advice for one alert, from the model or the rules."""

    alert_id: str
    asset: str
    source: str  # "model" or "rules"
    summary: str
    probable_causes: tuple[str, ...]
    recommended_actions: tuple[str, ...]
    urgency: str
    confidence: float
    latency_ms: int
    model: str | None = None
    reason: str | None = None  # why rules were used instead of the model
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdvicePartial:
    """The model's text so far while it writes advice for one alert (live view for HMIs, never stored).

    `part` counts from 1 per generation; the last one has `final` set, with why generation ended
    (`stop`) and whether the text became the published advice (`accepted`)."""

    alert_id: str
    asset: str
    part: int
    text: str  # everything generated so far (raw model output, not yet checked)
    output_tokens: int
    elapsed_ms: int  # since the alert reached the advisor (the same clock as Advice.latency_ms)
    final: bool = False
    model: str | None = None
    stop: str | None = None  # final only: "eos", "deadline", "max_new", "max_length", "error", "stopped"
    accepted: bool | None = None  # final only: True when this text is the published advice
