"""Alarm state machine per asset: one episode id from raise to clear, no floods (ISA-18.2).

Per signal, N of the last M samples must be anomalous to raise; every signal that was anomalous must then
be normal (below the lower, hysteresis threshold) for K samples of its own before the episode clears; after a
clear, a cooldown keeps a flapping signal from re-opening at once; 'updated' is sent only when the severity
rises, at most once per interval. Pure: times are sample timestamps or the `now` given to the tick.
"""

from __future__ import annotations

from typing import Any

from edgeslm.ids import uuid7
from edgeslm.models import AlarmEvent, AlarmState, Severity, SignalEvidence
from edgeslm.settings.detect import AlarmSettings

_RANK = {s: s.rank for s in Severity}


class AssetAlarm:
    """The open episode (if any) of one asset and the bookkeeping to decide when it ends."""

    __slots__ = ("abnormal", "alarm_id", "asset", "cooldown_until", "detectors", "involved", "last_anomalous_ts",
                 "last_emit_ts", "peak", "sent_severity", "severity", "started_ts")

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.alarm_id: str | None = None
        self.abnormal: set[str] = set()  # signals not yet normal for clear_after samples (or stale)
        self.involved: set[str] = set()  # signals that were anomalous during the open episode
        self.cooldown_until = float("-inf")
        self.started_ts = 0.0
        self.severity = Severity.LOW
        self.sent_severity = Severity.LOW
        self.last_emit_ts = 0.0
        self.last_anomalous_ts = 0.0
        self.peak = 0.0
        self.detectors: set[str] = set()

    @property
    def open(self) -> bool:
        return self.alarm_id is not None

    def start(self, ts: float, severity: Severity, score: float, detectors: set[str]) -> None:
        self.alarm_id = uuid7(max(0, int(ts * 1000)))
        self.started_ts = ts
        self.severity = self.sent_severity = severity
        self.last_emit_ts = ts
        self.last_anomalous_ts = ts
        self.peak = score
        self.detectors = set(detectors)

    def note(self, ts: float, severity: Severity, score: float, detectors: tuple[str, ...]) -> None:
        """An anomalous sample inside the open episode."""
        self.last_anomalous_ts = ts
        self.peak = max(self.peak, score)
        if _RANK[severity] > _RANK[self.severity]:
            self.severity = severity
        self.detectors.update(detectors)

    def wants_update(self, ts: float, cfg: AlarmSettings) -> bool:
        return (_RANK[self.severity] > _RANK[self.sent_severity]
                and ts - self.last_emit_ts >= cfg.update_min_interval_s)

    def event(self, state: AlarmState, ts: float, signals: tuple[SignalEvidence, ...]) -> AlarmEvent:
        assert self.alarm_id is not None
        if state is not AlarmState.CLEARED:
            self.sent_severity = self.severity
            self.last_emit_ts = ts
        return AlarmEvent(alarm_id=self.alarm_id, asset=self.asset, state=state, severity=self.severity, ts=ts,
                          started_ts=self.started_ts, detectors=tuple(sorted(self.detectors)), signals=signals,
                          score=self.peak)

    def finish(self, ts: float, cfg: AlarmSettings) -> None:
        self.alarm_id = None
        self.cooldown_until = ts + cfg.cooldown_s
        self.abnormal.clear()
        self.involved = set()
        self.detectors = set()
        self.peak = 0.0

    def get_state(self) -> dict[str, Any]:
        cd = self.cooldown_until
        return {"alarm_id": self.alarm_id, "abnormal": sorted(self.abnormal),
                "involved": sorted(self.involved),
                "cooldown_until": cd if cd != float("-inf") else None, "started_ts": self.started_ts,
                "severity": self.severity.value, "sent_severity": self.sent_severity.value,
                "last_emit_ts": self.last_emit_ts, "last_anomalous_ts": self.last_anomalous_ts,
                "peak": self.peak, "detectors": sorted(self.detectors)}

    def set_state(self, d: dict[str, Any]) -> None:
        self.alarm_id = d["alarm_id"]
        self.abnormal = set(d["abnormal"])
        self.involved = set(d.get("involved", ()))
        self.cooldown_until = float("-inf") if d["cooldown_until"] is None else float(d["cooldown_until"])
        self.started_ts = float(d["started_ts"])
        self.severity = Severity(d["severity"])
        self.sent_severity = Severity(d["sent_severity"])
        self.last_emit_ts = float(d["last_emit_ts"])
        self.last_anomalous_ts = float(d["last_anomalous_ts"])
        self.peak = float(d["peak"])
        self.detectors = set(d["detectors"])


def severity_for(surprise: float, limit: int, n_fired: int, cfg: AlarmSettings) -> Severity:
    """Severity from the surprise (nines of likelihood) and limit level (0 ok, 1 soft, 2 hard)."""
    if surprise >= cfg.critical_nines or (limit == 2 and n_fired > 1):
        return Severity.CRITICAL
    if surprise >= cfg.high_nines or limit == 2:
        return Severity.HIGH
    if surprise >= cfg.medium_nines:
        return Severity.MEDIUM
    return Severity.LOW
