"""Alert payloads (pure): what SCADA/HMI subscribers read on <prefix>/<site>/<asset>/alerts."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from edgeslm.models import AdviceStatus, AlarmEvent, SignalEvidence


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(x: float, digits: int = 4) -> float | None:
    """JSON has no NaN: a non-finite statistic becomes null rather than invalid JSON."""
    return round(x, digits) if math.isfinite(x) else None


def signal_evidence(s: SignalEvidence) -> dict[str, Any]:
    return {"signal": s.signal, "unit": s.unit, "value": _num(s.value), "window_mean": _num(s.window_mean),
            "window_min": _num(s.window_min), "window_max": _num(s.window_max),
            "baseline_mean": _num(s.baseline_mean), "baseline_std": _num(s.baseline_std),
            "deviation_sigma": _num(s.deviation, 2), "score": _num(s.score), "detectors": list(s.detectors)}


def alert_payload(event: AlarmEvent, *, site: str, gateway: str, advice_status: AdviceStatus,
                  advice_reason: str | None = None) -> dict[str, Any]:
    """`alert_id` names the episode (raised → updated → cleared); the outbox adds a per-message `id`."""
    body: dict[str, Any] = {
        "alert_id": event.alarm_id, "ts": iso(event.ts), "started": iso(event.started_ts), "site": site,
        "gateway": gateway, "asset": event.asset, "state": str(event.state), "severity": str(event.severity),
        "score": _num(event.score), "signals": list(event.signal_names), "detectors": list(event.detectors),
        "evidence": {"signals": [signal_evidence(s) for s in event.signals]},
        "advice_status": str(advice_status),
    }
    if advice_reason:
        body["advice_reason"] = advice_reason
    return body
